package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/scan"
)

type objSummary struct {
	Kind, Namespace, Name string
	Line                  int
}

func summarize(objs []*scan.Object) []objSummary {
	var out []objSummary
	for _, o := range objs {
		out = append(out, objSummary{o.Kind, o.Namespace, o.Name, o.Line})
	}
	return out
}

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		in   string
		want []objSummary
	}{
		{
			name: "multi-document with comments and empty documents",
			file: "m.yaml",
			in:   "# Source: chart/a.yaml\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n",
			want: []objSummary{{"Namespace", "", "shop", 2}, {"Deployment", "shop", "web", 8}},
		},
		{
			name: "namespaced kind without namespace lands in default",
			file: "pa.yaml",
			in:   "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: x\n",
			want: []objSummary{{"PeerAuthentication", "default", "x", 1}},
		},
		{
			name: "List kind",
			file: "list.yaml",
			in:   "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: a, namespace: n}\n- apiVersion: v1\n  kind: Service\n  metadata: {name: b, namespace: n}\n",
			want: []objSummary{{"Service", "n", "a", 4}, {"Service", "n", "b", 7}},
		},
		{
			name: "JSON object",
			file: "o.json",
			in:   `{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"}}`,
			want: []objSummary{{"Secret", "n", "s", 1}},
		},
		{
			name: "JSON array",
			file: "o.json",
			in:   `[{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"}}]`,
			want: []objSummary{{"Secret", "n", "s", 1}},
		},
		{
			name: "Consul agent HCL",
			file: "conf/server.hcl",
			in:   "datacenter = \"dc1\"\nacl {\n  default_policy = \"allow\"\n}\n",
			want: []objSummary{{"ConsulAgentConfig", "", "server.hcl", 1}},
		},
		{
			name: "Consul agent JSON",
			file: "agent.json",
			in:   `{"datacenter": "dc1", "verify_incoming": false}`,
			want: []objSummary{{"ConsulAgentConfig", "", "agent.json", 1}},
		},
		{
			name: "Consul config entry HCL",
			file: "i.hcl",
			in:   "Kind = \"service-intentions\"\nName = \"api\"\nSources = [{ Name = \"web\", Action = \"allow\" }]\n",
			want: []objSummary{{"ServiceIntentions", "", "api", 1}},
		},
		{
			name: "Helm values",
			file: "values.yaml",
			in:   "global:\n  name: consul\nconnectInject:\n  default: true\n",
			want: []objSummary{{"HelmValues", "", "values.yaml", 1}},
		},
		{
			name: "unrelated YAML is skipped",
			file: "ci.yaml",
			in:   "jobs:\n  build:\n    runs-on: ubuntu\n",
		},
		{
			name: "empty file",
			file: "e.yaml",
			in:   "",
		},
		{
			name: "meshward MeshConfig is cluster-wide",
			file: "mesh.yaml",
			in:   "apiVersion: meshward.dev/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {mtls: strict}\n",
			want: []objSummary{{"MeshConfig", "", "mesh", 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			objs, err := Decode(tc.file, []byte(tc.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tc.want, summarize(objs)); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeLines(t *testing.T) {
	t.Parallel()
	in := "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: x\n  namespace: y\nspec:\n  mtls:\n    mode: PERMISSIVE\n"
	objs, err := Decode("pa.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := objs[0].LineOf("spec.mtls.mode"); got != 8 {
		t.Errorf("LineOf(spec.mtls.mode) = %d, want 8", got)
	}
	if got := objs[0].Str("spec.mtls.mode"); got != "PERMISSIVE" {
		t.Errorf("Str = %q", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		file, in  string
		wantLine  int
		wantField string
		wantIn    string
	}{
		// Line 4, where the unclosed list opens (yaml.v3 says "line 3",
		// a 0-based line; config.ReadYAML corrects it for lint and scan).
		{"invalid YAML", "bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [broken\n", 4, "", "invalid YAML"},
		{"List item is a string", "list.yaml", "apiVersion: v1\nkind: List\nitems:\n  - hello\n", 4, "items[0]", "is a string, want a mapping"},
		{"List items not a list", "items.yaml", "apiVersion: v1\nkind: List\nitems: 3\n", 3, "items", "want a list of objects"},
		{"List item malformed", "item.yaml", "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Service\n    metadata: {namespace: x}\n", 6, "items[0].metadata.name", "missing"},
		{"kind not a string", "k.yaml", "apiVersion: v1\nkind: [a]\nmetadata:\n  name: x\n", 2, "kind", "not a string"},
		{"metadata wrong type", "m.yaml", "apiVersion: v1\nkind: Service\nmetadata: 5\n", 3, "metadata", "want a mapping"},
		{"missing name", "n.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  namespace: x\n", 3, "metadata.name", "missing"},
		{"labels wrong type", "l.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  labels: [a]\n", 5, "metadata.labels", "want a mapping"},
		{"spec wrong type", "s.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec: 3\n", 5, "spec", "want a mapping"},
		{"truncated HCL", "a.hcl", "acl {\n  enabled = \n", 0, "", "invalid HCL"},
		{"unknown config entry kind", "e.hcl", "Kind = \"nope\"\nName = \"x\"\n", 0, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode(tc.file, []byte(tc.in))
			if tc.name == "unknown config entry kind" {
				// Not a Consul entry kind: read as agent config or skipped, never a crash.
				return
			}
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("Decode error = %v, want *Error", err)
			}
			if me.File != tc.file {
				t.Errorf("file = %q, want %q", me.File, tc.file)
			}
			if tc.wantLine != 0 && me.Line != tc.wantLine {
				t.Errorf("line = %d, want %d (%v)", me.Line, tc.wantLine, err)
			}
			if me.Field != tc.wantField {
				t.Errorf("field = %q, want %q (%v)", me.Field, tc.wantField, err)
			}
			if !strings.Contains(err.Error(), tc.wantIn) {
				t.Errorf("error %q does not contain %q", err, tc.wantIn)
			}
		})
	}
}

func TestLoadDirectoryAndStdin(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("b/svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: b}\n")
	write("a.yml", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n")
	write("README.md", "not scanned")
	write(".git/x.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: hidden}\n")
	objs, err := Load([]string{dir, "-"}, strings.NewReader("apiVersion: v1\nkind: Service\nmetadata: {name: stdin}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.Name+"@"+filepath.Base(o.File))
	}
	want := []string{"a@a.yml", "b@svc.yaml", "stdin@-"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("loaded (-want +got):\n%s", diff)
	}
	if _, err := Load([]string{filepath.Join(dir, "missing")}, nil); err == nil {
		t.Error("Load of a missing path succeeded")
	}
}

func seeds(f *testing.F, exts ...string) {
	entries, err := os.ReadDir("testdata/seeds")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		for _, ext := range exts {
			if strings.HasSuffix(e.Name(), ext) {
				b, err := os.ReadFile(filepath.Join("testdata/seeds", e.Name()))
				if err != nil {
					f.Fatal(err)
				}
				f.Add(b)
			}
		}
	}
}

func checkObjects(t *testing.T, objs []*scan.Object) {
	for _, o := range objs {
		if o.Kind == "" || o.Name == "" {
			t.Fatalf("object without kind or name: %+v", o)
		}
		if o.Line < 0 {
			t.Fatalf("negative line %d", o.Line)
		}
	}
}

// FuzzDecodeYAML: the Kubernetes/JSON loader never panics, returns either
// objects or an *Error naming the file, and is deterministic.
func FuzzDecodeYAML(f *testing.F) {
	seeds(f, ".yaml", ".json")
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Decode("in.yaml", data)
		if err != nil {
			var me *Error
			if !errors.As(err, &me) || me.File != "in.yaml" {
				t.Fatalf("error %v is not an *Error naming the file", err)
			}
			return
		}
		checkObjects(t, objs)
		again, err := Decode("in.yaml", data)
		if err != nil || len(again) != len(objs) {
			t.Fatalf("second decode differs: %d vs %d objects, %v", len(again), len(objs), err)
		}
	})
}

// FuzzDecodeHCL: the Consul HCL loader never panics and is deterministic.
func FuzzDecodeHCL(f *testing.F) {
	seeds(f, ".hcl")
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Decode("in.hcl", data)
		if err != nil {
			var me *Error
			if !errors.As(err, &me) || me.File != "in.hcl" {
				t.Fatalf("error %v is not an *Error naming the file", err)
			}
			return
		}
		checkObjects(t, objs)
		again, _ := Decode("in.hcl", data)
		if len(again) != len(objs) {
			t.Fatalf("second decode differs")
		}
	})
}

// TestDecodeSkips: files that hold nothing the scanner reads give no
// objects and no problems, and say why they were skipped.
func TestDecodeSkips(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, in, reason string
	}{
		{"a string", "README.md", "# shop\nsome text\n", SkipNotRead},
		{"a list of values", "values.json", "[1, 2]\n", SkipNotRead},
		{"Kustomization", "kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n", SkipNotRead},
		{"Helm Chart.yaml", "Chart.yaml", "apiVersion: v2\nname: shop\nversion: 0.1.0\n", SkipNotRead},
		{"kind cluster", "kind.yaml", "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes: [{role: control-plane}]\n", SkipNotRead},
		{"other chart's values", "values.yaml", "replicaCount: 2\nimage: {tag: x}\n", SkipNotRead},
		{"unrendered template", "t.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\n  labels:\n    {{- include \"x\" . | nindent 4 }}\n", SkipTemplate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := DecodeFile(tc.file, []byte(tc.in))
			if len(res.Objects) != 0 || len(res.Problems) != 0 || res.Skipped == 0 || res.SkipReason != tc.reason {
				t.Fatalf("objects %d, problems %v, skipped %d (%q); want skipped as %q", len(res.Objects), res.Problems, res.Skipped, res.SkipReason, tc.reason)
			}
		})
	}
	// Read, not skipped: an empty List, and an IstioOperator without a name.
	for _, in := range []string{"apiVersion: v1\nkind: List\nitems: null\n", "apiVersion: v1\nkind: List\nitems: []\n"} {
		if res := DecodeFile("l.yaml", []byte(in)); len(res.Problems) != 0 || res.Skipped != 0 {
			t.Errorf("%q: problems %v, skipped %d; want an empty List read", in, res.Problems, res.Skipped)
		}
	}
	res := DecodeFile("op.yaml", []byte("apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec: {profile: default}\n"))
	if len(res.Objects) != 1 || res.Objects[0].Name != "installed-state" {
		t.Errorf("unnamed IstioOperator: %+v, %v; want read as installed-state", res.Objects, res.Problems)
	}
}
