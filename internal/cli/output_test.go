package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/control"
	"meshward.dev/meshward/internal/proxy"
)

// outputMesh is a real control plane (in-process, bolt in t.TempDir())
// with one connected sidecar, payments, for the output tests.
type outputMesh struct {
	dir, addr string
}

func startOutputMesh(t *testing.T) outputMesh {
	t.Helper()
	dir := startMesh(t, "payments")
	b, err := os.ReadFile(filepath.Join(dir, control.AddrFile))
	if err != nil {
		t.Fatal(err)
	}
	return outputMesh{dir: dir, addr: strings.TrimSpace(string(b))}
}

// normalizer replaces what changes from run to run (times, ports,
// serials, hashes, temporary paths) in an output, so it can be a golden.
type normalizer struct{ dirs []string }

var (
	timeRE     = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	portRE     = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	volatileRE = regexp.MustCompile(`"(serial|svid_serial|fingerprint|sha256|der|token|version|policy_version|git_commit)": "[^"]*"`)
	hexRE      = regexp.MustCompile(`\b[0-9a-f]{16,}\b`)
)

func (n normalizer) apply(s string) string {
	for _, d := range n.dirs {
		s = strings.ReplaceAll(s, d, "<dir>")
	}
	s = timeRE.ReplaceAllString(s, "<time>")
	s = portRE.ReplaceAllString(s, "127.0.0.1:<port>")
	s = volatileRE.ReplaceAllString(s, `"$1": "<$1>"`)
	return hexRE.ReplaceAllString(s, "<hex>")
}

func checkOutputGolden(t *testing.T, name, got string) {
	t.Helper()
	test, _, _ := strings.Cut(t.Name(), "/")
	path := filepath.Join("testdata", test, name+".golden")
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil { //nolint:gosec // a golden file
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run %s -update)", err, test)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

// decodeJSONOutput decodes one document, or for a stream one per line.
func decodeJSONOutput(t *testing.T, out string, stream bool) []any {
	t.Helper()
	var docs []any
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		docs = append(docs, v)
	}
	if stream {
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if out != "" && len(lines) != len(docs) {
			t.Errorf("stream: %d lines hold %d objects; want one object per line", len(lines), len(docs))
		}
	} else if len(docs) != 1 {
		t.Errorf("%d JSON documents, want 1", len(docs))
	}
	return docs
}

// decodeYAMLOutput decodes one YAML document, or for a stream the
// documents each starting with "---", into the JSON data model.
func decodeYAMLOutput(t *testing.T, out string, stream bool) []any {
	t.Helper()
	parts := []string{out}
	if stream {
		parts = nil
		if out != "" {
			if !strings.HasPrefix(out, "---\n") {
				t.Fatalf("yaml stream does not start with ---:\n%s", out)
			}
			parts = strings.Split(strings.TrimPrefix(out, "---\n"), "\n---\n")
		}
	}
	var docs []any
	for _, p := range parts {
		j, err := yaml.YAMLToJSON([]byte(p))
		if err != nil {
			t.Fatalf("not YAML: %v\n%s", err, out)
		}
		var v any
		if err := json.Unmarshal(j, &v); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, v)
	}
	return docs
}

// shape is a document with its leaves replaced by their JSON types, for
// comparing two outputs of a command that changes state (token create,
// apply) whose values differ but whose keys and types may not.
func shape(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, x := range v {
			m[k] = shape(x)
		}
		return m
	case []any:
		return "array" // lengths differ between runs; checkTypes looks inside
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return "?"
}

// Keys whose values are counters, revisions, ports or sizes (numbers), or
// times (RFC 3339 strings or null) in the output convention.
var (
	numberKeys = map[string]bool{
		"revision": true, "files": true, "active_connections": true, "total_requests": true, "value": true,
		"policies": true, "passed": true, "failed": true, "rules": true, "line": true, "key_bits": true, "id": true,
		"critical": true, "high": true, "medium": true, "low": true, "info": true, "objects": true,
	}
	timeKeys = map[string]bool{
		"time": true, "not_before": true, "not_after": true, "svid_not_after": true, "expires_at": true, "applied_at": true,
		"started_at": true, "connected_since": true, "last_report": true, "traffic_at": true, "next_intermediate_rotation": true,
		"retire_after": true, "probed_at": true, "reported": true,
	}
	// textKeys may hold digits only and still be text (a grant's port
	// can be "*"; an HTTP code label; tap's grpc_status can be "other" or
	// "none"; hex serials).
	textKeys = map[string]bool{"port": true, "code": true, "grpc_status": true, "serial": true, "svid_serial": true, "fingerprint": true, "sha256": true}
	digitsRE = regexp.MustCompile(`^-?\d+(\.\d+)?$`)
)

// checkTypes fails on a counter that is not a number, a time that is not
// an RFC 3339 string, a number-looking string (what protojson makes of an
// int64), and a camelCase key.
func checkTypes(t *testing.T, path string, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			p := path + "." + k
			if k != strings.ToLower(k) {
				t.Errorf("%s: key is not snake_case", p)
			}
			switch {
			case numberKeys[k] && k != "files":
				if _, ok := x.(float64); !ok {
					t.Errorf("%s = %#v: want a number", p, x)
				}
			case k == "files": // a count, or identity fetch's paths
				if _, ok := x.(string); ok {
					t.Errorf("%s = %#v: want a number or an object", p, x)
				}
			case timeKeys[k]:
				if s, ok := x.(string); ok {
					if tm, err := time.Parse(time.RFC3339Nano, s); err != nil || tm.Location() != time.UTC {
						t.Errorf("%s = %q: want an RFC 3339 UTC time", p, s)
					}
				} else if x != nil {
					t.Errorf("%s = %#v: want an RFC 3339 string or null", p, x)
				}
				continue
			}
			if s, ok := x.(string); ok && !textKeys[k] && digitsRE.MatchString(s) {
				t.Errorf("%s = %q: a number written as a string", p, s)
			}
			checkTypes(t, p, x)
		}
	case []any:
		for _, x := range v {
			checkTypes(t, path+"[]", x)
		}
	}
}

// outputCase is one command whose -o json is pinned by a golden file and
// whose -o yaml must be the same data.
type outputCase struct {
	name   string
	args   []string
	stream bool // one record per line / document
	// changes is set for commands that change state: a second run (for
	// yaml) differs in values, so only keys and types are compared.
	changes bool
	// yamlArgs, when set, are the arguments of the yaml run (a join token
	// is single use).
	yamlArgs []string
	code     int
}

func runOutputCase(t *testing.T, n normalizer, tc outputCase) {
	t.Helper()
	run := func(format string) string {
		args := tc.args
		if format == formatYAML && tc.yamlArgs != nil {
			args = tc.yamlArgs
		}
		out, errOut, code := runCLI(t, append(append([]string{}, args...), "-o", format)...)
		if code != tc.code {
			t.Fatalf("%v -o %s: exit %d, want %d: %s", tc.args, format, code, tc.code, errOut)
		}
		return out
	}
	jout := run(formatJSON)
	jdocs := decodeJSONOutput(t, jout, tc.stream)
	for _, d := range jdocs {
		checkTypes(t, tc.name, d)
	}
	checkOutputGolden(t, tc.name, n.apply(jout))
	ydocs := decodeYAMLOutput(t, run(formatYAML), tc.stream)
	want, got := any(jdocs), any(ydocs)
	if tc.changes {
		want, got = shape(jdocs), shape(ydocs)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("-o yaml is not the data of -o json (-json +yaml):\n%s", diff)
	}
}

// TestOutputGolden pins -o json of every command (golden files; refresh
// with go test ./internal/cli -run TestOutputGolden -update), checks the
// types of known fields and that -o yaml is the same data. Commands that
// talk to the control plane run against a real one with a real sidecar.
func TestOutputGolden(t *testing.T) {
	m := startOutputMesh(t)
	idDir := t.TempDir()
	n := normalizer{dirs: []string{m.dir, idDir}}
	var toks [2]string
	for i := range toks {
		tok, errOut, code := runCLI(t, "token", "create", "--data-dir", m.dir, "--service", "web")
		if code != 0 {
			t.Fatalf("token create: %s", errOut)
		}
		toks[i] = strings.TrimSpace(tok)
	}
	id, id2 := "spiffe://shop.local/ns/default/sa/orders", "spiffe://shop.local/ns/default/sa/legacy"
	if _, errOut, code := runCLI(t, "identity", "ban", id2, "--data-dir", m.dir); code != 0 {
		t.Fatalf("ban: %s", errOut)
	}
	f := newProbeFixture(t)
	n.dirs = append(n.dirs, f.dir)
	probeNow := f.notBefore.Add(time.Hour).UTC().Format(time.RFC3339)
	for _, tc := range []outputCase{
		{name: "token-create", args: []string{"token", "create", "--data-dir", m.dir, "--service", "web"}, changes: true},
		{name: "identity-fetch", args: []string{"identity", "fetch", "--token", toks[0], "--control", m.addr, "--out", idDir},
			yamlArgs: []string{"identity", "fetch", "--token", toks[1], "--control", m.addr, "--out", idDir}, changes: true},
		{name: "policy-apply", args: []string{"policy", "apply", demoPolicies, "--allow-unknown-services", "--data-dir", m.dir}, changes: true},
		{name: "policy-apply-other", args: []string{"policy", "apply", "../policy/testdata/TestLint/warnings", "--allow-unknown-services", "--data-dir", m.dir}, changes: true},
		{name: "policy-rollback", args: []string{"policy", "rollback", "1", "--data-dir", m.dir}, changes: true},
		{name: "policy-history", args: []string{"policy", "history", "--data-dir", m.dir}},
		{name: "identity-ban", args: []string{"identity", "ban", id, "--reason", "test", "--data-dir", m.dir}},
		{name: "identity-unban", args: []string{"identity", "unban", id, "--data-dir", m.dir},
			yamlArgs: []string{"identity", "unban", id2, "--data-dir", m.dir}, changes: true},
		{name: "ca-rotate", args: []string{"ca", "rotate", "--data-dir", m.dir}, changes: true},
		{name: "ca-show", args: []string{"ca", "show", "--data-dir", m.dir}},
		{name: "ca-status", args: []string{"ca", "status", "--data-dir", m.dir}},
		{name: "status", args: []string{"status", "--data-dir", m.dir}, changes: true}, // counters move
		{name: "audit", args: []string{"audit", "--since", "1h", "--data-dir", m.dir}, stream: true, changes: true},
		{name: "policy-lint", args: []string{"policy", "lint", "--mesh", demoMesh}},
		{name: "policy-test", args: []string{"policy", "test", demoPolicies, "--mesh", demoMesh}},
		{name: "policy-diff", args: []string{"policy", "diff", demoPolicies, "../policy/testdata/TestLint/warnings", "--allow-widen"}},
		{name: "probe", args: []string{"probe", f.mtls, "--bundle", f.bundle, "--now", probeNow}},
		{name: "scan", args: []string{"scan", "../../examples/insecure-istio", "--fail-on", "none"}},
	} {
		t.Run(tc.name, func(t *testing.T) { runOutputCase(t, n, tc) })
	}
}

// TestOutputTapRecords pins tap's records (json and yaml) from a fixed
// event: the sidecar's event becomes the output convention (time in UTC,
// duration as a Go duration string).
func TestOutputTapRecords(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 1, 12, 0, 0, 123000000, time.FixedZone("CET", 3600))
	events := []*proxy.Event{
		{Time: at, Direction: "inbound", Protocol: "http1", Source: "spiffe://shop.local/ns/default/sa/frontend", Destination: "payments",
			Port: 8443, Method: "GET", Path: "/admin", Status: 403, Duration: 1500 * time.Microsecond, Decision: "deny", Policy: "payments", Rule: "default-deny", Mode: "enforce"},
		{Time: at.Add(500 * time.Millisecond), Direction: "inbound", Protocol: "grpc", Source: "spiffe://shop.local/ns/default/sa/orders", Destination: "payments",
			Port: 8443, Method: "POST", Path: "/shop.Payments/Charge", Status: 200, GRPCStatus: "5", Duration: 800 * time.Microsecond, Decision: "allow", Policy: "payments", Rule: "orders-charge", Mode: "enforce"},
		{Time: at.Add(time.Second), Direction: "outbound", Protocol: "tcp", Source: "spiffe://shop.local/ns/default/sa/payments", Destination: "db", Duration: 2 * time.Second},
	}
	for _, format := range []string{formatJSON, formatYAML} {
		var b bytes.Buffer
		for _, e := range events {
			if err := writeRecord(&b, format, newTapView(e)); err != nil {
				t.Fatal(err)
			}
		}
		checkOutputGolden(t, format, b.String())
	}
	var j, y bytes.Buffer
	for _, e := range events {
		_ = writeRecord(&j, formatJSON, newTapView(e))
		_ = writeRecord(&y, formatYAML, newTapView(e))
	}
	jdocs := decodeJSONOutput(t, j.String(), true)
	for _, d := range jdocs {
		checkTypes(t, "tap", d)
	}
	if diff := cmp.Diff(jdocs, decodeYAMLOutput(t, y.String(), true)); diff != "" {
		t.Errorf("yaml records are not the json records (-json +yaml):\n%s", diff)
	}
}

// TestOutputViewsOfProtoEpochs: a proto message with every epoch and
// counter set prints times and numbers, never number-looking strings.
func TestOutputViewsOfProtoEpochs(t *testing.T) {
	t.Parallel()
	epoch := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	pv := &apiv1.PolicyVersion{Revision: 7, Version: "abc", AppliedAt: epoch.Unix(), Files: 3}
	st := &apiv1.MeshStatusResponse{
		TrustDomain: "shop.local", StartedAt: epoch.Unix(), Policy: pv,
		Ca: &apiv1.CAStatusResponse{Certificates: []*apiv1.Certificate{{Role: "root", NotBefore: epoch.Unix(), NotAfter: epoch.Unix()}},
			NextIntermediateRotation: epoch.Unix(), RetireAfter: epoch.Unix()},
		Workloads: []*apiv1.WorkloadStatus{{SpiffeId: "spiffe://shop.local/ns/default/sa/a", SvidNotAfter: epoch.Unix(), ActiveConnections: 2,
			TotalRequests: 1 << 40, ConnectedSince: epoch.Unix(), LastReport: epoch.Unix(), TrafficAt: epoch.UnixNano(),
			Traffic: []*apiv1.TrafficCounter{{Kind: "requests", Code: "200", Value: 12}}}},
	}
	for name, v := range map[string]any{
		"status": newStatusView(st), "history": newPolicyHistoryView(&apiv1.PolicyHistoryResponse{Versions: []*apiv1.PolicyVersion{pv}}),
		"audit": newAuditView(&apiv1.AuditEvent{Time: epoch.UnixNano(), Action: "policy.apply"}),
		"audit deny": newAuditView(&apiv1.AuditEvent{Time: epoch.UnixNano(), Action: "request.deny", Deny: &apiv1.AuditDeny{
			Method: "GET", Path: "/1", Port: 8084, Rule: "default-deny", PolicyVersion: "sha256:aa", GitCommit: "4e94245", Reported: epoch.UnixNano()}}),
	} {
		var b bytes.Buffer
		if err := writeOutput(&b, formatJSON, v); err != nil {
			t.Fatal(err)
		}
		for _, d := range decodeJSONOutput(t, b.String(), false) {
			checkTypes(t, name, d)
		}
		if !strings.Contains(b.String(), `"2026-11-01T12:00:00Z"`) {
			t.Errorf("%s: no RFC 3339 time in\n%s", name, b.String())
		}
	}
	if err := writeOutput(&bytes.Buffer{}, formatJSON, st); err == nil {
		t.Error("writeOutput printed a proto message as it is; want an error (it needs a view)")
	}
}

// outputFlagArgs are the arguments with which each command that has -o
// reaches its -o check; other failures (no control plane in an empty data
// dir, nothing listening) are fine.
func outputFlagArgs(t *testing.T) map[string][]string {
	empty := t.TempDir()
	closed := unusedAddr(t)
	admin := []string{"--data-dir", empty}
	return map[string][]string{
		"meshward status":          admin,
		"meshward ca show":         admin,
		"meshward ca status":       admin,
		"meshward ca rotate":       admin,
		"meshward audit":           admin,
		"meshward tap":             append([]string{"payments"}, admin...),
		"meshward token create":    append([]string{"--service", "web"}, admin...),
		"meshward identity fetch":  {"--token", "x", "--control", closed, "--out", t.TempDir()},
		"meshward identity ban":    append([]string{"spiffe://shop.local/ns/default/sa/x"}, admin...),
		"meshward identity unban":  append([]string{"spiffe://shop.local/ns/default/sa/x"}, admin...),
		"meshward policy lint":     {demoPolicies},
		"meshward policy test":     {demoPolicies},
		"meshward policy diff":     {demoPolicies, demoPolicies},
		"meshward policy apply":    append([]string{demoPolicies}, admin...),
		"meshward policy history":  admin,
		"meshward policy rollback": append([]string{"1"}, admin...),
		"meshward scan":            {"../../examples/insecure-istio", "--fail-on", "none"},
		"meshward scan rules":      nil,
		"meshward probe":           {closed, "--timeout", "1s"},
		"meshward dashboard":       {"--addr", closed},
		"meshward version":         nil,
	}
}

// TestOutputFlagEveryCommand walks every command with -o: it defaults to
// text, says it takes text, json and yaml, accepts each of them, and
// refuses -o xml with a usage error (exit 2) naming the accepted values.
func TestOutputFlagEveryCommand(t *testing.T) {
	t.Parallel()
	argsFor := outputFlagArgs(t)
	var walk func(c *cobra.Command)
	var cmds []*cobra.Command
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("output") != nil {
			cmds = append(cmds, c)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd(&bytes.Buffer{}, &bytes.Buffer{}))
	if len(cmds) < len(argsFor)/2 {
		t.Fatalf("found only %d commands with -o", len(cmds))
	}
	for _, c := range cmds {
		path := c.CommandPath()
		t.Run(strings.TrimPrefix(path, "meshward "), func(t *testing.T) {
			t.Parallel()
			f := c.Flags().Lookup("output")
			if f.Shorthand != "o" || f.DefValue != formatText || !strings.HasPrefix(f.Usage, "output format: text, json") || !strings.Contains(f.Usage, "yaml") {
				t.Errorf("-o: shorthand %q, default %q, usage %q; want -o, text, and text, json and yaml named", f.Shorthand, f.DefValue, f.Usage)
			}
			args, ok := argsFor[path]
			if !ok {
				args = []string{"--data-dir", t.TempDir()}
			}
			base := append(strings.Fields(strings.TrimPrefix(path, "meshward ")), args...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var stderr bytes.Buffer
			err := Execute(ctx, append(append([]string{}, base...), "-o", "xml"), &bytes.Buffer{}, &stderr)
			if ExitCode(err) != exitUsage || !strings.Contains(stderr.String(), `-o must be one of text, json, yaml`) || !strings.Contains(stderr.String(), `"xml"`) {
				t.Fatalf("-o xml: exit %d, stderr %q; want exit 2 naming text, json, yaml (add %q to outputFlagArgs if it needs arguments)", ExitCode(err), stderr.String(), path)
			}
			for _, format := range []string{formatText, formatJSON, formatYAML} {
				stderr.Reset()
				_ = Execute(ctx, append(append([]string{}, base...), "-o", format), &bytes.Buffer{}, &stderr)
				if strings.Contains(stderr.String(), "-o must be") {
					t.Errorf("-o %s refused: %s", format, stderr.String())
				}
			}
		})
	}
}

// TestCheckOutput: the one helper that decides -o.
func TestCheckOutput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		got   string
		extra []string
		ok    bool
	}{
		{"text", nil, true}, {"json", nil, true}, {"yaml", nil, true},
		{"xml", nil, false}, {"", nil, false}, {"JSON", nil, false},
		{"sarif", nil, false}, {"sarif", []string{"sarif"}, true},
	} {
		err := checkOutput(tc.got, tc.extra...)
		if (err == nil) != tc.ok {
			t.Errorf("checkOutput(%q, %v) = %v, want ok %v", tc.got, tc.extra, err, tc.ok)
		}
		if err != nil && (ExitCode(err) != exitUsage || !strings.Contains(err.Error(), "text, json, yaml")) {
			t.Errorf("checkOutput(%q): %v (exit %d); want exit 2 naming the accepted values", tc.got, err, ExitCode(err))
		}
	}
}
