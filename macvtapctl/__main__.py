from macvtapctl.cli import main

main()
