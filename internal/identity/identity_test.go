package identity

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var testTD = spiffeid.RequireTrustDomainFromString("shop.local")

func TestServiceID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		namespace string
		account   string
		want      string
		wantErr   string
	}{
		{name: "service", namespace: "default", account: "orders", want: "spiffe://shop.local/ns/default/sa/orders"},
		{name: "empty namespace is default", account: "orders", want: "spiffe://shop.local/ns/default/sa/orders"},
		{name: "service account", namespace: "shop", account: "orders-sa", want: "spiffe://shop.local/ns/shop/sa/orders-sa"},
		{name: "digits", namespace: "ns1", account: "9", want: "spiffe://shop.local/ns/ns1/sa/9"},
		{name: "63 characters", account: strings.Repeat("a", 63), want: "spiffe://shop.local/ns/default/sa/" + strings.Repeat("a", 63)},
		{name: "empty account", namespace: "default", wantErr: "service is empty"},
		{name: "64 characters", account: strings.Repeat("a", 64), wantErr: "longer than 63"},
		{name: "upper case", account: "Orders", wantErr: `service "Orders": use lower-case`},
		{name: "slash", account: "a/b", wantErr: "use lower-case"},
		{name: "leading dash", account: "-a", wantErr: "use lower-case"},
		{name: "trailing dash", namespace: "a-", account: "x", wantErr: `namespace "a-"`},
		{name: "dot", account: "a.b", wantErr: "use lower-case"},
		{name: "underscore", namespace: "a_b", account: "x", wantErr: "namespace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ServiceID(testTD, tc.namespace, tc.account)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ServiceID(%q, %q) = %v, %v; want error %q", tc.namespace, tc.account, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got.String()); diff != "" {
				t.Errorf("ServiceID (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseServiceID(t *testing.T) {
	t.Parallel()
	type parsed struct {
		Namespace, Account string
		OK                 bool
	}
	tests := []struct {
		name string
		in   string
		want parsed
	}{
		{name: "service", in: "spiffe://shop.local/ns/default/sa/orders", want: parsed{"default", "orders", true}},
		{name: "service account", in: "spiffe://shop.local/ns/shop/sa/orders-sa", want: parsed{"shop", "orders-sa", true}},
		{name: "names are not checked", in: "spiffe://shop.local/ns/A_b/sa/C.d", want: parsed{"A_b", "C.d", true}},
		{name: "ns and sa as names", in: "spiffe://shop.local/ns/sa/sa/ns", want: parsed{"sa", "ns", true}},
		{name: "control plane", in: "spiffe://shop.local/meshward/control"},
		{name: "trust domain", in: "spiffe://shop.local"},
		{name: "too deep", in: "spiffe://shop.local/ns/a/sa/b/c"},
		{name: "namespace only", in: "spiffe://shop.local/ns/a"},
		{name: "no sa", in: "spiffe://shop.local/ns/a/xx/b"},
		{name: "swapped", in: "spiffe://shop.local/sa/a/ns/b"},
		{name: "prefix", in: "spiffe://shop.local/x/ns/a/sa/b"},
		{name: "not an ID", in: "ns/default/sa/orders"},
		{name: "empty", in: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got parsed
			got.Namespace, got.Account, got.OK = ParseServiceIDString(tc.in)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseServiceIDString(%q) (-want +got):\n%s", tc.in, diff)
			}
			if id, err := spiffeid.FromString(tc.in); err == nil {
				var fromID parsed
				fromID.Namespace, fromID.Account, fromID.OK = ParseServiceID(id)
				if diff := cmp.Diff(got, fromID); diff != "" {
					t.Errorf("ParseServiceID and ParseServiceIDString disagree (-string +id):\n%s", diff)
				}
			}
		})
	}
}

func TestNamespacePattern(t *testing.T) {
	t.Parallel()
	if got, want := NamespacePattern(testTD, "ops"), "spiffe://shop.local/ns/ops/*"; got != want {
		t.Errorf("NamespacePattern = %q; want %q", got, want)
	}
	if got, want := NamespacePattern(testTD, ""), "spiffe://shop.local/ns/default/*"; got != want {
		t.Errorf("NamespacePattern(\"\") = %q; want %q", got, want)
	}
	tests := []struct {
		in     string
		wantNS string
		wantOK bool
	}{
		{"spiffe://shop.local/ns/ops/*", "ops", true},
		{"spiffe://shop.local/ns/ops", "", false},
		{"spiffe://shop.local/ns/ops/sa/x", "", false},
		{"spiffe://shop.local/ns/ops/sa/*", "", false},
		{"spiffe://shop.local/*", "", false},
		{"*", "", false},
		{"ns/ops/*", "", false},
	}
	for _, tc := range tests {
		ns, ok := ParseNamespacePattern(tc.in)
		if ns != tc.wantNS || ok != tc.wantOK {
			t.Errorf("ParseNamespacePattern(%q) = %q, %v; want %q, %v", tc.in, ns, ok, tc.wantNS, tc.wantOK)
		}
	}
}

// refParse is an independent reading of the /ns/N/sa/A form, to check
// ParseServiceID against.
func refParse(path string) (ns, account string, ok bool) {
	parts := strings.Split(path, "/")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "ns" || parts[3] != "sa" || parts[2] == "" || parts[4] == "" {
		return "", "", false
	}
	return parts[2], parts[4], true
}

// validName is what ServiceID accepts, written independently of checkName.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}

// FuzzServiceID checks the constructor and the parser against each other
// and against independent oracles: what ServiceID builds parses back to
// the same names; what it refuses is a name the parser would not give back
// (or one that is not DNS-label-like); and ParseServiceID agrees with a
// split-based reading of the path.
func FuzzServiceID(f *testing.F) {
	for _, s := range [][2]string{
		{"default", "orders"}, {"", "orders"}, {"shop", "orders-sa"}, {"ns", "sa"},
		{"a/sa/b", "c"}, {"a", "b/c"}, {"A", "b"}, {"a_b", "c"}, {"-a", "b"}, {"a", ""},
		{"a.b", "c"}, {strings.Repeat("a", 64), "b"}, {"a", "b\x00"}, {"é", "b"},
		{"default", "Orders"}, {"default", "a.b"}, {"default", "a_b"}, {"default", "-a"}, {"default", "a-"},
		{"default", strings.Repeat("a", 64)},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, ns, account string) {
		id, err := ServiceID(testTD, ns, account)
		wantNS := ns
		if wantNS == "" {
			wantNS = "default"
		}
		if err != nil {
			if validName(wantNS) && validName(account) {
				t.Fatalf("ServiceID(%q, %q) refused valid names: %v", ns, account, err)
			}
			return
		}
		if !validName(wantNS) || !validName(account) {
			t.Fatalf("ServiceID(%q, %q) = %s; accepted an invalid name", ns, account, id)
		}
		gotNS, gotAccount, ok := ParseServiceID(id)
		if !ok || gotNS != wantNS || gotAccount != account {
			t.Fatalf("ParseServiceID(ServiceID(%q, %q) = %s) = %q, %q, %v", ns, account, id, gotNS, gotAccount, ok)
		}
		again, err := ServiceID(testTD, gotNS, gotAccount)
		if err != nil || again != id {
			t.Fatalf("ServiceID(ParseServiceID(%s)) = %v, %v", id, again, err)
		}
	})
}

// FuzzParseServiceID parses arbitrary IDs: the parser agrees with the
// split-based oracle, and an ID it accepts with valid names is exactly
// the one ServiceID builds from them.
func FuzzParseServiceID(f *testing.F) {
	for _, s := range []string{
		"spiffe://shop.local/ns/default/sa/orders", "spiffe://shop.local/ns/a/sa/b/c", "spiffe://shop.local/ns/sa/sa/ns",
		"spiffe://shop.local/meshward/control", "spiffe://shop.local", "spiffe://shop.local/ns/A/sa/B", "ns/a/sa/b",
		"spiffe://shop.local/ns//sa/b", "spiffe://other.org/ns/a/sa/b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ns, account, ok := ParseServiceIDString(s)
		id, err := spiffeid.FromString(s)
		if err != nil {
			if ok {
				t.Fatalf("ParseServiceIDString(%q) accepted an invalid SPIFFE ID", s)
			}
			return
		}
		rns, raccount, rok := refParse(id.Path())
		if ns != rns || account != raccount || ok != rok {
			t.Fatalf("ParseServiceIDString(%q) = %q, %q, %v; oracle says %q, %q, %v", s, ns, account, ok, rns, raccount, rok)
		}
		if !ok || !validName(ns) || !validName(account) {
			return
		}
		built, err := ServiceID(id.TrustDomain(), ns, account)
		if err != nil || built != id {
			t.Fatalf("ServiceID(ParseServiceIDString(%q)) = %v, %v", s, built, err)
		}
	})
}
