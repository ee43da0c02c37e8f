package capture

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Chain names. Both live in the nat table.
const (
	ChainInbound  = "MESHWARD_PREROUTING"
	ChainOutbound = "MESHWARD_OUTPUT"
)

// commentPrefix tags every rule, so `iptables-save` shows whose rule it is.
const commentPrefix = "meshward/"

// multiportLimit is the most ports one -m multiport match takes.
const multiportLimit = 15

// rule is one rule of a chain, written the way iptables-save prints it
// (after "-A CHAIN "), so an installed rule set compares to a rendered one
// line by line.
type rule struct {
	chain string
	spec  string
}

func (r rule) String() string { return "-A " + r.chain + " " + r.spec }

// jumps are the two rules meshward adds to the built-in chains. They are
// inserted first, so no earlier rule in PREROUTING or OUTPUT can take
// traffic past capture.
func jumps() []rule {
	return []rule{
		{"PREROUTING", comment("install-prerouting") + " -j " + ChainInbound},
		{"OUTPUT", comment("install-output") + " -j " + ChainOutbound},
	}
}

func comment(name string) string {
	return `-m comment --comment "` + commentPrefix + name + `"`
}

// rules are the rules of meshward's two chains for cfg, in order.
func rules(cfg Config) []rule {
	var rs []rule
	in := func(spec string) { rs = append(rs, rule{ChainInbound, spec}) }
	out := func(spec string) { rs = append(rs, rule{ChainOutbound, spec}) }

	// Inbound: the sidecar's own ports and the exclusions first, then the
	// redirect of the app's ports (or of all TCP) to the mTLS listener.
	own := []int{cfg.InboundPort}
	if cfg.AdminPort != 0 {
		own = append(own, cfg.AdminPort)
	}
	for _, ps := range portChunks(own) {
		in("-p tcp -m multiport --dports " + ps + " " + comment("ignore-sidecar-ports") + " -j RETURN")
	}
	for _, ps := range portChunks(cfg.ExcludeInboundPorts) {
		in("-p tcp -m multiport --dports " + ps + " " + comment("ignore-inbound-ports") + " -j RETURN")
	}
	for _, c := range sortedCIDRs(cfg.ExcludeInboundCIDRs) {
		in("-s " + c + " " + comment("ignore-inbound-cidr") + " -j RETURN")
	}
	to := " -j REDIRECT --to-ports " + strconv.Itoa(cfg.InboundPort)
	if len(cfg.InboundPorts) == 0 {
		in("-p tcp " + comment("redirect-inbound") + to)
	}
	for _, ps := range portChunks(cfg.InboundPorts) {
		in("-p tcp -m multiport --dports " + ps + " " + comment("redirect-inbound") + to)
	}

	// Outbound: the proxy's own traffic, loopback and the exclusions
	// return; all other TCP goes to the outbound capture listener.
	out("-m owner --uid-owner " + strconv.Itoa(cfg.ProxyUID) + " " + comment("ignore-proxy-uid") + " -j RETURN")
	if cfg.ProxyGID != 0 {
		out("-m owner --gid-owner " + strconv.Itoa(cfg.ProxyGID) + " " + comment("ignore-proxy-gid") + " -j RETURN")
	}
	out("-o lo " + comment("ignore-loopback") + " -j RETURN")
	for _, ps := range portChunks(cfg.ExcludeOutboundPorts) {
		out("-p tcp -m multiport --dports " + ps + " " + comment("ignore-outbound-ports") + " -j RETURN")
	}
	for _, c := range sortedCIDRs(cfg.ExcludeOutboundCIDRs) {
		out("-d " + c + " " + comment("ignore-outbound-cidr") + " -j RETURN")
	}
	out("-p tcp " + comment("redirect-outbound") + " -j REDIRECT --to-ports " + strconv.Itoa(cfg.OutboundPort))
	return rs
}

// portChunks sorts and deduplicates ports and joins them in groups of at
// most multiportLimit.
func portChunks(ports []int) []string {
	ps := slices.Clone(ports)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	var out []string
	for chunk := range slices.Chunk(ps, multiportLimit) {
		s := make([]string, len(chunk))
		for i, p := range chunk {
			s[i] = strconv.Itoa(p)
		}
		out = append(out, strings.Join(s, ","))
	}
	return out
}

func sortedCIDRs(cidrs []netip.Prefix) []string {
	s := make([]string, 0, len(cidrs))
	for _, c := range cidrs {
		s = append(s, c.String())
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// Render returns the iptables-restore input (for --noflush) that installs
// cfg's capture rules in a namespace that has none yet: meshward's two nat
// chains and the jumps to them. Target.Install adds what replaces rules a
// previous install left. Render is pure and deterministic.
func Render(cfg Config) (string, error) {
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	return script(cfg, nil), nil
}

// script is the restore input: delete the stale jumps (lines of an earlier
// install, as iptables-save printed them), declare (and so flush) meshward's
// chains, fill them, insert the jumps. iptables-restore applies it as one
// transaction: either all of it is in place or none.
func script(cfg Config, stale []rule) string {
	var b strings.Builder
	b.WriteString("# meshward transparent capture (rule shape of linkerd2-proxy-init); apply with iptables-restore --noflush\n")
	b.WriteString("*nat\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n:%s - [0:0]\n", ChainInbound, ChainOutbound)
	for _, r := range stale {
		b.WriteString("-D " + r.chain + " " + r.spec + "\n")
	}
	for _, r := range rules(cfg) {
		b.WriteString(r.String() + "\n")
	}
	for _, r := range jumps() {
		b.WriteString("-I " + r.chain + " 1 " + r.spec + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// removeScript takes out the jumps to meshward's chains found in a nat
// table dump and then the chains; empty when there is nothing to remove, so
// Remove never creates a nat table that was not there.
func removeScript(nat natTable) string {
	if len(nat.jumps) == 0 && len(nat.chains) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("*nat\n")
	for _, r := range nat.jumps {
		b.WriteString("-D " + r.chain + " " + r.spec + "\n")
	}
	for _, c := range nat.chains {
		b.WriteString("-F " + c + "\n")
	}
	for _, c := range nat.chains {
		b.WriteString("-X " + c + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// natTable is what matters to meshward in an iptables-save dump of the nat
// table.
type natTable struct {
	chains []string        // meshward chains that exist
	jumps  []rule          // rules in PREROUTING or OUTPUT that jump to a meshward chain
	rules  []rule          // the rules of meshward's chains, in order
	first  map[string]rule // the first rule of each built-in chain
}

func isOurs(chain string) bool { return chain == ChainInbound || chain == ChainOutbound }

// parseNat reads iptables-save output (all tables or only nat).
func parseNat(dump string) natTable {
	t := natTable{first: map[string]rule{}}
	table := ""
	for line := range strings.Lines(dump) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			continue
		case table != "nat":
			continue
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if isOurs(name) {
				t.chains = append(t.chains, name)
			}
		case strings.HasPrefix(line, "-A "):
			chain, spec, _ := strings.Cut(line[3:], " ")
			r := rule{chain, spec}
			if _, seen := t.first[chain]; !seen && !isOurs(chain) {
				t.first[chain] = r
			}
			switch {
			case isOurs(chain):
				t.rules = append(t.rules, r)
			case (chain == "PREROUTING" || chain == "OUTPUT") && jumpsToOurs(spec):
				t.jumps = append(t.jumps, r)
			}
		}
	}
	return t
}

func jumpsToOurs(spec string) bool {
	f := strings.Fields(spec)
	for i := 0; i+1 < len(f); i++ {
		if (f[i] == "-j" || f[i] == "-g") && isOurs(f[i+1]) {
			return true
		}
	}
	return false
}
