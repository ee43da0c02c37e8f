package capture

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A dump as iptables-nft-save prints it after an install, with someone
// else's rules around meshward's.
const installedDump = `*filter
:INPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:MESHWARD_PREROUTING - [0:0]
:MESHWARD_OUTPUT - [0:0]
:OTHER - [0:0]
-A PREROUTING -m comment --comment "meshward/install-prerouting" -j MESHWARD_PREROUTING
-A PREROUTING -p tcp -m tcp --dport 81 -j OTHER
-A OUTPUT -m comment --comment "meshward/install-output" -j MESHWARD_OUTPUT
-A OUTPUT -p tcp -j MESHWARD_OUTPUT
-A POSTROUTING -j MASQUERADE
-A OTHER -j MESHWARD_OUTPUT
-A MESHWARD_PREROUTING -p tcp -m comment --comment "meshward/redirect-inbound" -j REDIRECT --to-ports 4143
-A MESHWARD_OUTPUT -p tcp -m comment --comment "meshward/redirect-outbound" -j REDIRECT --to-ports 4140
COMMIT
`

func TestParseNat(t *testing.T) {
	t.Parallel()
	got := parseNat(installedDump)
	want := natTable{
		chains: []string{ChainInbound, ChainOutbound},
		jumps: []rule{
			{"PREROUTING", `-m comment --comment "meshward/install-prerouting" -j MESHWARD_PREROUTING`},
			{"OUTPUT", `-m comment --comment "meshward/install-output" -j MESHWARD_OUTPUT`},
			{"OUTPUT", `-p tcp -j MESHWARD_OUTPUT`},
		},
		rules: []rule{
			{ChainInbound, `-p tcp -m comment --comment "meshward/redirect-inbound" -j REDIRECT --to-ports 4143`},
			{ChainOutbound, `-p tcp -m comment --comment "meshward/redirect-outbound" -j REDIRECT --to-ports 4140`},
		},
		first: map[string]rule{
			"PREROUTING":  {"PREROUTING", `-m comment --comment "meshward/install-prerouting" -j MESHWARD_PREROUTING`},
			"OUTPUT":      {"OUTPUT", `-m comment --comment "meshward/install-output" -j MESHWARD_OUTPUT`},
			"POSTROUTING": {"POSTROUTING", `-j MASQUERADE`},
			"OTHER":       {"OTHER", `-j MESHWARD_OUTPUT`},
		},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(natTable{}, rule{})); diff != "" {
		t.Errorf("parseNat (-want +got):\n%s", diff)
	}
	// The filter table's rules and a chain named like ours elsewhere are not ours.
	if got := parseNat("*filter\n:MESHWARD_OUTPUT - [0:0]\n-A INPUT -j MESHWARD_OUTPUT\nCOMMIT\n"); len(got.chains)+len(got.jumps) != 0 {
		t.Errorf("parseNat took filter rules for meshward's: %+v", got)
	}
}

func TestInstallScriptReplacesStaleJumps(t *testing.T) {
	t.Parallel()
	got := script(base(), parseNat(installedDump).jumps)
	want := `# meshward transparent capture (rule shape of linkerd2-proxy-init); apply with iptables-restore --noflush
*nat
:MESHWARD_PREROUTING - [0:0]
:MESHWARD_OUTPUT - [0:0]
-D PREROUTING -m comment --comment "meshward/install-prerouting" -j MESHWARD_PREROUTING
-D OUTPUT -m comment --comment "meshward/install-output" -j MESHWARD_OUTPUT
-D OUTPUT -p tcp -j MESHWARD_OUTPUT
`
	if len(got) < len(want) || got[:len(want)] != want {
		t.Errorf("script does not start by deleting the stale jumps:\n%s", got)
	}
}

func TestRemoveScript(t *testing.T) {
	t.Parallel()
	got := removeScript(parseNat(installedDump))
	want := `*nat
-D PREROUTING -m comment --comment "meshward/install-prerouting" -j MESHWARD_PREROUTING
-D OUTPUT -m comment --comment "meshward/install-output" -j MESHWARD_OUTPUT
-D OUTPUT -p tcp -j MESHWARD_OUTPUT
-F MESHWARD_PREROUTING
-F MESHWARD_OUTPUT
-X MESHWARD_PREROUTING
-X MESHWARD_OUTPUT
COMMIT
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("removeScript (-want +got):\n%s", diff)
	}
	if got := removeScript(parseNat("*filter\nCOMMIT\n")); got != "" {
		t.Errorf("removeScript with nothing installed = %q, want empty (no nat table created)", got)
	}
}

func TestCheckRules(t *testing.T) {
	t.Parallel()
	cfg := base()
	// What iptables-save prints after restoring text into an empty table.
	installed := "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:MESHWARD_PREROUTING - [0:0]\n:MESHWARD_OUTPUT - [0:0]\n"
	for _, j := range jumps() {
		installed += j.String() + "\n"
	}
	for _, r := range rules(cfg) {
		installed += r.String() + "\n"
	}
	installed += "COMMIT\n"
	if err := checkRules(cfg, parseNat(installed)); err != nil {
		t.Fatalf("checkRules on a faithful install: %v", err)
	}
	other := cfg
	other.OutboundPort = 15001
	if err := checkRules(other, parseNat(installed)); err == nil {
		t.Error("checkRules accepted rules for another outbound port")
	}
	ahead := "*nat\n-A OUTPUT -p tcp -j ACCEPT\n" + installed[len("*nat\n"):]
	if err := checkRules(cfg, parseNat(ahead)); err == nil {
		t.Error("checkRules accepted a rule ahead of meshward's jump")
	}
	if err := checkRules(cfg, parseNat("")); err == nil {
		t.Error("checkRules accepted an empty table")
	}
}
