"""MTU math for one inter-cloud link: per-layer overheads and the largest VM MTU (pure).

A VM's IP packet (`vm_mtu` bytes at most) crosses a link inside these layers, outermost first
(IPv4 underlay; a layer is absent when its condition does not hold):

| layer                             | bytes          | present when                          |
|-----------------------------------|----------------|---------------------------------------|
| IPsec outer IPv4 header           | 20             | ESP tunnel mode                       |
| NAT-T UDP header (port 4500)      | 8              | ESP tunnel mode + NAT-T               |
| tunnel IPv4 header                | 20 (IPv6: 40)  | always; in transport mode it comes    |
|                                   |                | first and stays in clear, before ESP  |
| ESP header: SPI 4 + sequence 4    | 8              | ESP                                   |
| ESP IV                            | 8 GCM, ChaCha; | ESP                                   |
|                                   | 16 AES-CBC     |                                       |
| tunnel UDP header                 | 8              | VXLAN, Geneve (GRE: none)             |
| VXLAN / Geneve / GRE+key header   | 8 / 8 / 8      | always                                |
| inner Ethernet header             | 14             | always (L2 tunnel)                    |
| 802.1Q tag                        | 4 per tag      | tagged inner frames (`vlan_tags`)     |
| VM IP packet                      | vm_mtu         |                                       |
| ESP padding                       | 0..block-1     | ESP: pads payload+2 to the block size |
|                                   |                | (4 for GCM/ChaCha, 16 for AES-CBC)    |
| ESP pad length + next header      | 2              | ESP                                   |
| ESP ICV                           | 16 GCM-16,     | ESP                                   |
|                                   | 12 GCM-12 or   |                                       |
|                                   | HMAC-SHA1-96,  |                                       |
|                                   | 16 SHA256-128  |                                       |

Sums. VXLAN over IPv4 = 20 + 8 + 8 + 14 = 50 (OpenStack's 1500 - 50 = 1450); the paper's
54 B is the same plus one 802.1Q tag on the inner frame (`vlan_tags=1`); its GRE 46 B is
20 + GRE 4 + key 4 + 14 + 4. ESP worst case (`esp_overhead`): transport with AES-GCM-16 =
8 + 8 + 2 + 3 (padding) + 16 = 37 B, the paper's "up to 37 B"; tunnel mode adds 20 and NAT-T 8:
65 B, the paper's "65 with NAT-T". `vm_mtu` is the largest VM IP packet whose encapsulated
packet fits `underlay_mtu` without fragmentation; with padding="exact" (the default) it uses the
padding that packet really needs, so it is the true maximum. `mss` = vm_mtu - 40 (IPv4 + TCP
headers without options); IPv6 TCP would be 20 less (`mss6`).

The paper's VM MTUs (1416 with ESP transport, 1384 with NAT-T) are not `1500 - 54 - 37` (1409)
nor `1500 - 54 - 65` (1381). One consistent set of assumptions reproduces both: VXLAN without a
tag in the tunnel (50 B), AES-GCM-16 (8 IV, 16 ICV), exact ESP padding to 4 bytes, and the
result rounded down to a multiple of 8 (`align=8`): exact values 1416 and 1388, rounded 1416 and
1384. Without rounding no single choice of tag gives both: untagged 1416/1388, tagged 1412/1384.
(AES-GCM-12 with one tag and `align=8` also gives 1416/1384, but contradicts the paper's 37 B.)

Our default is what strongSwan's kernel-libipsec does here: ESP tunnel mode in UDP 4500 with
AES-256-GCM-16 on a 1500 underlay: vm_mtu 1388, mss 1348, and the packet handed to IPsec may be
up to 1438 bytes (`ipsec_packet_mtu`). kernel-libipsec's TUN device has MTU 1400 by default;
pass `ipsec_mtu=1400` to account for it (vm_mtu 1350).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

IPV4, IPV6, UDP, ETHERNET, VLAN_TAG = 20, 40, 8, 14, 4
ESP_HEADER = 8  # SPI + sequence number
ESP_TRAILER = 2  # pad length + next header
TCP_IPV4 = 40  # IPv4 + TCP headers, no options
TUNNEL_HEADERS = {"vxlan": (UDP, 8), "geneve": (UDP, 8), "gretap": (0, 8)}  # (UDP, own header)


class Encryption(StrEnum):
    NONE = "none"
    ESP_TRANSPORT = "esp-transport"
    ESP_TUNNEL = "esp-tunnel"
    ESP_TUNNEL_NATT = "esp-tunnel-natt"  # ESP in UDP 4500 (NAT-T; always so with libipsec)


@dataclass(frozen=True)
class Cipher:
    """What an ESP transform adds: IV, integrity check value, padding block size."""

    name: str
    iv: int
    icv: int
    block: int  # ESP pads (payload + 2) to a multiple of this; 4 at least


AES_GCM_16 = Cipher("aes-gcm-16", iv=8, icv=16, block=4)
AES_GCM_12 = Cipher("aes-gcm-12", iv=8, icv=12, block=4)
AES_GCM_8 = Cipher("aes-gcm-8", iv=8, icv=8, block=4)
CHACHA20_POLY1305 = Cipher("chacha20-poly1305", iv=8, icv=16, block=4)
AES_CBC_SHA1_96 = Cipher("aes-cbc-sha1-96", iv=16, icv=12, block=16)
AES_CBC_SHA256_128 = Cipher("aes-cbc-sha256-128", iv=16, icv=16, block=16)
AES_CBC_SHA384_192 = Cipher("aes-cbc-sha384-192", iv=16, icv=24, block=16)
AES_CBC_SHA512_256 = Cipher("aes-cbc-sha512-256", iv=16, icv=32, block=16)
CIPHERS = {
    c.name: c
    for c in (
        AES_GCM_16,
        AES_GCM_12,
        AES_GCM_8,
        CHACHA20_POLY1305,
        AES_CBC_SHA1_96,
        AES_CBC_SHA256_128,
        AES_CBC_SHA384_192,
        AES_CBC_SHA512_256,
    )
}
DEFAULT_CIPHER = AES_GCM_16  # AES-256-GCM-16: the key length does not change the sizes
DEFAULT_ENCRYPTION = Encryption.ESP_TUNNEL_NATT

_GCM_ICV = {"8": 8, "64": 8, "12": 12, "96": 12, "16": 16, "128": 16}
_CBC_INTEGRITY = {
    "md5": AES_CBC_SHA1_96,  # HMAC-MD5-96: 12 bytes, like SHA1-96
    "sha1": AES_CBC_SHA1_96,
    "sha256": AES_CBC_SHA256_128,
    "sha384": AES_CBC_SHA384_192,
    "sha512": AES_CBC_SHA512_256,
}


def cipher_for_proposal(proposal: str) -> Cipher:
    """The ESP sizes of a strongSwan ESP proposal ("aes256gcm16-x25519", "aes128-sha256")."""
    algos = proposal.lower().split("-")
    if m := re.fullmatch(r"aes(?:128|192|256)?gcm(\d*)", algos[0]):
        icv = _GCM_ICV.get(m.group(1) or "16")
        if icv is not None:
            return {8: AES_GCM_8, 12: AES_GCM_12, 16: AES_GCM_16}[icv]
    elif algos[0] == "chacha20poly1305":
        return CHACHA20_POLY1305
    elif re.fullmatch(r"aes(?:128|192|256)?(?:cbc)?", algos[0]):
        for algo in algos[1:]:
            if algo in _CBC_INTEGRITY:
                return _CBC_INTEGRITY[algo]
    raise ValueError(f"unknown ESP proposal {proposal!r}: give its IV/ICV/block as a Cipher")


@dataclass(frozen=True)
class LinkMtu:
    """The budget of one link. `layers` lists every byte but the VM packet, outermost first,
    with the padding a vm_mtu-sized packet really gets; sum(layers) + vm_mtu == underlay_mtu
    ("unused" takes what rounding or a cap leaves over)."""

    underlay_mtu: int
    tunnel: str
    encryption: Encryption
    cipher: Cipher | None
    layers: tuple[tuple[str, int], ...]
    tunnel_overhead: int  # tunnel IP + UDP + tunnel header + inner Ethernet (+ tags)
    esp_overhead: int  # worst case (full padding), incl. outer IP and NAT-T UDP; 0 if none
    ipsec_packet_mtu: int  # largest tunnel packet that still fits once encrypted
    vm_mtu: int
    mss: int

    @property
    def overhead(self) -> int:
        return self.underlay_mtu - self.vm_mtu

    @property
    def mss6(self) -> int:
        return self.vm_mtu - 60


def tunnel_overhead(tunnel: str = "vxlan", *, vlan_tags: int = 0, outer_ipv6: bool = False) -> int:
    """Bytes a tunnel adds to a VM's IP packet: 50 for VXLAN over IPv4, 54 with one tag."""
    if tunnel not in TUNNEL_HEADERS:
        raise ValueError(f"unknown tunnel {tunnel!r} (known: {', '.join(TUNNEL_HEADERS)})")
    udp, header = TUNNEL_HEADERS[tunnel]
    return (IPV6 if outer_ipv6 else IPV4) + udp + header + ETHERNET + VLAN_TAG * vlan_tags


def esp_overhead(
    encryption: Encryption | str = DEFAULT_ENCRYPTION,
    cipher: Cipher = DEFAULT_CIPHER,
    *,
    outer_ipv6: bool = False,
) -> int:
    """Worst-case ESP bytes (full padding): 37 transport / 65 NAT-T tunnel with AES-GCM-16."""
    enc = Encryption(encryption)
    if enc is Encryption.NONE:
        return 0
    outside, _ = _esp_outside(enc, cipher, IPV6 if outer_ipv6 else IPV4)
    return outside + ESP_TRAILER + cipher.block - 1 + cipher.icv


def _esp_outside(enc: Encryption, cipher: Cipher, ip: int) -> tuple[int, int]:
    """(ESP bytes before the encrypted payload, tunnel bytes that stay in clear before them).
    `ip`: the size of an underlay IP header (20 IPv4, 40 IPv6)."""
    esp = ESP_HEADER + cipher.iv
    if enc is Encryption.ESP_TRANSPORT:
        return esp, ip  # the tunnel's own IP header stays in front, in clear
    natt = UDP if enc is Encryption.ESP_TUNNEL_NATT else 0
    return ip + natt + esp, 0


def wire_size(
    vm_packet: int,
    tunnel: str = "vxlan",
    encryption: Encryption | str = DEFAULT_ENCRYPTION,
    cipher: Cipher = DEFAULT_CIPHER,
    *,
    vlan_tags: int = 0,
    outer_ipv6: bool = False,
) -> int:
    """Size on the underlay of a VM IP packet of `vm_packet` bytes (exact ESP padding)."""
    enc = Encryption(encryption)
    packet = vm_packet + tunnel_overhead(tunnel, vlan_tags=vlan_tags, outer_ipv6=outer_ipv6)
    if enc is Encryption.NONE:
        return packet
    before, clear = _esp_outside(enc, cipher, IPV6 if outer_ipv6 else IPV4)
    payload = packet - clear
    return clear + before + _padded(payload, cipher.block) + cipher.icv


def _padded(payload: int, block: int) -> int:
    """Payload + padding + pad length + next header, a multiple of `block`."""
    return -(-(payload + ESP_TRAILER) // block) * block


def link_mtu(
    underlay_mtu: int = 1500,
    tunnel: str = "vxlan",
    encryption: Encryption | str = DEFAULT_ENCRYPTION,
    cipher: Cipher | str = DEFAULT_CIPHER,
    *,
    vlan_tags: int = 0,
    outer_ipv6: bool = False,
    padding: Literal["exact", "worst"] = "exact",
    align: int = 1,
    ipsec_mtu: int | None = None,
) -> LinkMtu:
    """The overheads and largest VM MTU of a link (module docstring for the math).

    padding: "exact" uses the padding the packet needs; "worst" reserves block-1 bytes.
    align: round vm_mtu down to a multiple of this (the paper's figures need 8).
    ipsec_mtu: a cap on the packet handed to IPsec (kernel-libipsec's TUN MTU, e.g. 1400)."""
    enc = Encryption(encryption)
    ciph = CIPHERS[cipher] if isinstance(cipher, str) else cipher
    tun = tunnel_overhead(tunnel, vlan_tags=vlan_tags, outer_ipv6=outer_ipv6)
    tunnel_ip = IPV6 if outer_ipv6 else IPV4
    udp, header = TUNNEL_HEADERS[tunnel]
    inner = [("tunnel UDP header", udp), (f"{tunnel.upper()} header", header)]
    inner += [("inner Ethernet header", ETHERNET), ("802.1Q tags", VLAN_TAG * vlan_tags)]
    tunnel_ip_layer = (f"tunnel IPv{6 if outer_ipv6 else 4} header", tunnel_ip)

    if enc is Encryption.NONE:
        largest = underlay_mtu  # the tunnel packet may fill the underlay
        layers = [tunnel_ip_layer, *inner]
        trailer: list[tuple[str, int]] = []
    else:
        before, clear = _esp_outside(enc, ciph, tunnel_ip)
        room = underlay_mtu - clear - before - ciph.icv  # for payload + padding + trailer
        if padding == "exact":
            most = room // ciph.block * ciph.block - ESP_TRAILER
        else:
            most = room - ESP_TRAILER - (ciph.block - 1)
        largest = most + clear
        esp = [("ESP header (SPI + sequence)", ESP_HEADER), ("ESP IV", ciph.iv)]
        if enc is Encryption.ESP_TRANSPORT:
            layers = [tunnel_ip_layer, *esp, *inner]
        else:
            outer = [(f"IPsec outer IPv{6 if outer_ipv6 else 4} header", tunnel_ip)]
            if enc is Encryption.ESP_TUNNEL_NATT:
                outer.append(("NAT-T UDP header", UDP))
            layers = [*outer, *esp, tunnel_ip_layer, *inner]
        trailer = [("ESP padding", 0), ("ESP pad length + next header", ESP_TRAILER)]
        trailer.append(("ESP ICV", ciph.icv))

    fits = largest if ipsec_mtu is None or enc is Encryption.NONE else min(largest, ipsec_mtu)
    vm = fits - tun
    vm -= vm % align
    if vm < 68:
        raise ValueError(f"underlay MTU {underlay_mtu} leaves no room for a VM packet")
    if trailer:
        real = wire_size(vm, tunnel, enc, ciph, vlan_tags=vlan_tags, outer_ipv6=outer_ipv6)
        fixed = sum(n for _, n in layers) + sum(n for _, n in trailer) + vm
        trailer[0] = ("ESP padding", real - fixed)
    layers += trailer
    layers.append(("unused", underlay_mtu - vm - sum(n for _, n in layers)))
    return LinkMtu(
        underlay_mtu=underlay_mtu,
        tunnel=tunnel,
        encryption=enc,
        cipher=None if enc is Encryption.NONE else ciph,
        layers=tuple((name, n) for name, n in layers if n),
        tunnel_overhead=tun,
        esp_overhead=esp_overhead(enc, ciph, outer_ipv6=outer_ipv6),
        ipsec_packet_mtu=largest,
        vm_mtu=vm,
        mss=vm - TCP_IPV4,
    )
