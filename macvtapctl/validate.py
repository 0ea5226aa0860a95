"""One place for every rule on user input. Each failure names the value and the rule."""

from __future__ import annotations

import re

from macvtapctl.errors import UsageError

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
# The name part of an extended resource (a qualified name): alphanumerics, '-', '_', '.', alnum at both ends.
QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z")
IFNAMSIZ = 15
MACVTAP_MODES = ("bridge", "private", "vepa", "passthru")
RESOURCE_PREFIX = "macvtap.network.kubevirt.io"
DEVICE_ID_MAX = 63
CAPACITY_RANGE = (1, 10000)
MTU_RANGE = (68, 65535)


def check_dns_label(value: str, what: str) -> str:
    if len(value) > 63 or not DNS1123_LABEL.match(value):
        raise UsageError(f'invalid {what} "{value}": must be a DNS-1123 label (at most 63 characters: lowercase '
                         "letters, digits and '-', starting and ending with a letter or digit)")
    return value


def check_dns_subdomain(value: str, what: str) -> str:
    if len(value) > 253 or not DNS1123_SUBDOMAIN.match(value):
        raise UsageError(f'invalid {what} "{value}": must be a DNS-1123 subdomain (at most 253 characters: '
                         "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)")
    return value


def check_binding_name(value: str) -> str:
    return check_dns_label(value, "binding name")


def interface_name_problem(value: str) -> str | None:
    """Why `value` is not a valid Linux interface name, or None (the rule CNI's skel and the kernel apply)."""
    if not value:
        return "must not be empty"
    if len(value) > IFNAMSIZ:
        return f"must be at most {IFNAMSIZ} characters"
    if value in (".", ".."):
        return "must not be '.' or '..'"
    if "/" in value or ":" in value or any(c.isspace() for c in value):
        return "must not contain '/', ':' or whitespace"
    return None


def check_interface_name(value: str, what: str = "interface name") -> str:
    problem = interface_name_problem(value)
    if problem:
        raise UsageError(f'invalid {what} "{value}": a Linux interface name {problem}')
    return value


def device_id(name: str, index: int) -> str:
    """The device-plugin device ID, as upstream macvtap-cni names them."""
    return f"{name}Mvp{index}"


def is_device_id(value: str, name: str, capacity: int) -> bool:
    """Whether `value` is one of device_id(name, 0 … capacity-1), without listing them (Allocate checks every
    ID the kubelet sends; building the 1,000 IDs of a resource measured 0.48 ms per call)."""
    prefix = f"{name}Mvp"
    if not value.startswith(prefix):
        return False
    number = value[len(prefix):]
    return number.isascii() and number.isdigit() and str(int(number)) == number and int(number) < capacity


def resource_name_problem(name: str, capacity: int) -> str | None:
    if not name:
        return "must not be empty"
    if not QUALIFIED_NAME.match(name):
        return ("must be a valid extended resource name part: letters, digits, '-', '_' or '.', starting and "
                "ending with a letter or digit")
    if len(name) > 63:
        return "must be at most 63 characters"
    longest = device_id(name, max(capacity - 1, 0))
    if len(longest) > DEVICE_ID_MAX:
        return f"is too long: device ID {longest!r} would exceed {DEVICE_ID_MAX} characters"
    return None


def check_resource_name(name: str, capacity: int = 1) -> str:
    problem = resource_name_problem(name, capacity)
    if problem:
        raise UsageError(f'invalid resource name "{name}": {problem}')
    return name


def check_mode(mode: str) -> str:
    if mode not in MACVTAP_MODES:
        raise UsageError(f'invalid mode "{mode}": must be one of {", ".join(MACVTAP_MODES)}')
    return mode


LINUX_USER = re.compile(r"^[a-z_][a-z0-9_-]*\$?\Z")  # useradd's default NAME_REGEX (shadow-utils)


def check_linux_user(value: str) -> str:
    if len(value) > 32 or not LINUX_USER.match(value):
        raise UsageError(f"invalid --user {value!r}: a Linux user name is 1-32 characters: lowercase letters, "
                         "digits, '_' or '-', starting with a letter or '_'")
    return value


def check_capacity(capacity: int) -> int:
    lo, hi = CAPACITY_RANGE
    if not lo <= capacity <= hi:
        raise UsageError(f"invalid capacity {capacity}: must be an integer from {lo} to {hi}")
    return capacity


def check_mtu(mtu: int) -> int:
    lo, hi = MTU_RANGE
    if not lo <= mtu <= hi:
        raise UsageError(f"invalid MTU {mtu}: must be from {lo} to {hi}")
    return mtu


def full_resource_name(name: str) -> str:
    return f"{RESOURCE_PREFIX}/{name}"


# --- KubeVirt VM rules ------------------------------------------------------------------------------

KUBEVIRT_IFACE_NAME = re.compile(r"^[A-Za-z0-9_-]+\Z")
_MAC = re.compile(r"^([0-9A-Fa-f]{2})([:-])([0-9A-Fa-f]{2})(\2[0-9A-Fa-f]{2}){4}\Z")


def check_vm_network_name(value: str) -> str:
    """networks[].name / interfaces[].name: a DNS label (KubeVirt's schema) made of [A-Za-z0-9-_] (its admitter)."""
    if not KUBEVIRT_IFACE_NAME.match(value):
        raise UsageError(f'invalid network name "{value}": KubeVirt interface names can only contain letters, '
                         "digits, '-' and '_'")
    return check_dns_label(value, "network name")


def normalize_mac(value: str) -> str:
    """Lower-case colon form of a 6-byte MAC; KubeVirt accepts ':' or '-' separators."""
    if not _MAC.match(value):
        raise UsageError(f'invalid MAC address "{value}": expected six hex bytes like 02:00:00:00:00:01')
    return value.replace("-", ":").lower()


def check_unicast_mac(value: str) -> str:
    mac = normalize_mac(value)
    first = int(mac[:2], 16)
    if first & 0x01:
        raise UsageError(f'invalid MAC address "{value}": it is a multicast address (the first byte is odd); a NIC '
                         "needs a unicast MAC")
    if mac == "00:00:00:00:00:00":
        raise UsageError(f'invalid MAC address "{value}": all zeros')
    return mac


_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?\Z")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")


def check_quantity(value: str, flag: str) -> str:
    if not _QUANTITY.match(value):
        raise UsageError(f'invalid {flag} "{value}": expected a Kubernetes quantity like 1Gi or 512Mi')
    return value


def check_label(key: str, value: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if (slash and not DNS1123_SUBDOMAIN.match(prefix)) or not name or len(name) > 63 \
            or not QUALIFIED_NAME.match(name):
        raise UsageError(f'invalid label key "{key}": must be [prefix/]name, name at most 63 characters of '
                         "letters, digits, '-', '_' and '.'")
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise UsageError(f'invalid label value "{value}" for "{key}": at most 63 characters of letters, digits, '
                         "'-', '_' and '.', starting and ending with a letter or digit")


def parse_labels(values: list[str], flag: str) -> dict[str, str]:
    """Repeated KEY=VALUE flags (--label, --node-selector), each checked as a Kubernetes label."""
    labels: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f'invalid {flag} "{item}": expected KEY=VALUE')
        check_label(key, value)
        labels[key] = value
    return labels
