package capture

import (
	"net/netip"
	"time"
)

// DefaultIPTables is the iptables variant Target uses unless told
// otherwise: the nf_tables back end, as Linkerd's proxy-init defaults to.
const DefaultIPTables = "iptables-nft"

// DefaultProbeAddr is where the probe connection is addressed unless Probe
// says otherwise: an address of TEST-NET-3 (RFC 5737), which no real host
// has, so a probe that escapes capture reaches nobody. Port 20001 is the
// one linkerd-network-validator uses.
var DefaultProbeAddr = netip.MustParseAddrPort("203.0.113.1:20001")

// DefaultProbeTimeout bounds a probe unless Probe says otherwise.
const DefaultProbeTimeout = 5 * time.Second
