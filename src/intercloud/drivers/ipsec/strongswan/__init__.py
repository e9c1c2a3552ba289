"""IPsec with strongSwan's charon, driven over VICI (one IKE SA per link, PSK authentication).

Decisions, settled by experiment with strongSwan 5.9.8 and kernel-libipsec (see
tests/integration/test_ipsec_strongswan.py):

* Backend: "kernel-libipsec" if VICI `stats` lists that plugin (5.9.8 has no `get-plugins`).
* Mode: libipsec cannot do transport mode, so the CHILD_SA is TUNNEL with libipsec, with a
  NAT (a `local_ts`/`remote_ts` override differing from the IKE address), or when asked;
  TRANSPORT (the ConnectionSpec default) only with the kernel backend. `tunnels()` reports the
  mode charon negotiated.
* Traffic selectors: all traffic between the two endpoint addresses (`local/32 === remote/32`,
  or the NAT overrides), not just UDP `protect_port`. libipsec routes everything to the
  peer's address into its TUN device (table 220) and drops what no SA covers, so a UDP-4789
  selector would swallow pings and the agents' federation HTTP (TCP 8700); protecting all of
  it is simple and encrypts federation HTTP too. IKE and ESP-in-UDP bypass the TUN route by
  fwmark (see charon_conf.py: socket-default/kernel-netlink fwmark, kernel-libipsec allow_peer_ts).
* start_action = trap on both sides: the route into the TUN device exists from load time, so
  tunnel traffic is never sent in clear; without an SA libipsec drops it ("could not find an
  outbound IPsec SA"). libipsec sends no acquires, so traps never initiate: the `initiator`
  side initiates in `ensure_connection` whenever no IKE SA exists (non-blocking: VICI initiate
  with timeout -1; the agent's reconciler calls it periodically, which is the retry), and
  uses dpd_action=restart / close_action=start; the responder only answers.
* NAT: the NAT'd side initiates (its `local` is its private address); the public side's
  `remote` is the NAT address and its `remote_ts` the peer's private address, which is also
  the address its tunnel traffic (VXLAN remote) must use: the TS are the inner addresses.
  libipsec always encapsulates ESP in UDP and fakes NAT detection to force it, so charon's
  `nat-remote` is "yes" on every libipsec link. `nat_detected` therefore means: `nat-local`
  (our address is translated) or the peer's IKE address lies outside its traffic selector.
* Changes: the loaded config is compared with `list-conns` (addresses, ids, TS, mode,
  lifetimes) plus an in-memory digest of the whole load-conn dict (proposals are not listed);
  a differing conn is reloaded and, on the initiator, its SAs terminated so new ones use it
  (the responder does not: both terminating at once raced in CI and left stale SAs). The PSK
  (id = conn name, owners = both ids) is reloaded when missing or different, and a changed
  key terminates the SAs on either side; it is never logged. `unique = replace`: a new IKE SA
  with the same peer deletes older ones.
* Errors: a listener thread with its own VICI session subscribes to `log`, `ike-updown`
  and `child-updown`. Log lines (level <= 1, never secrets) of an IKE SA named after a
  connection are classified: "received AUTHENTICATION_FAILED notify error" (initiator) and
  "... but MAC mismatched" (responder) become "authentication failed: ..."; an `up` event
  clears the error.

Modules: conns.py (ConnectionSpec -> load-conn dict, and back to compare), session.py (VICI
session, event listener, log classification), driver.py (StrongswanIpsec).
"""

from intercloud.drivers.ipsec.strongswan.conns import (
    child_lifetimes,
    conn_dict,
    conn_view,
    effective_mode,
    nat_expected,
    validate,
)
from intercloud.drivers.ipsec.strongswan.driver import StrongswanIpsec
from intercloud.drivers.ipsec.strongswan.session import classify, unix_session

__all__ = [
    "StrongswanIpsec",
    "child_lifetimes",
    "classify",
    "conn_dict",
    "conn_view",
    "effective_mode",
    "nat_expected",
    "unix_session",
    "validate",
]
