package config

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestLoadMesh(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want *Mesh
	}{
		{
			file: "minimal.yaml",
			want: &Mesh{
				Name: "tiny", TrustDomain: "meshward.local", DataDir: ".meshward",
				Control: Listener{"127.0.0.1:7443"}, Dashboard: Listener{"127.0.0.1:9900"},
				Policies: "./policies",
				Services: []Service{{Name: "web", Namespace: "default", Port: 8081, Protocol: "http"}},
			},
		},
		{
			file: "demo.yaml",
			want: &Mesh{
				Name: "shop", TrustDomain: "shop.local", DataDir: ".meshward",
				Control: Listener{"127.0.0.1:7443"}, Dashboard: Listener{"127.0.0.1:9900"},
				Policies: "./policies",
				Services: []Service{
					{Name: "frontend", Namespace: "default", Command: []string{"meshward", "demo-app", "frontend"}, Port: 8081, Protocol: "http", Expose: "127.0.0.1:8080",
						Upstreams: []Upstream{{"catalog", "127.0.0.1:9001"}, {"orders", "127.0.0.1:9002"}}},
					{Name: "catalog", Namespace: "default", Command: []string{"meshward", "demo-app", "catalog"}, Port: 8082, Protocol: "http"},
					{Name: "orders", Namespace: "default", Command: []string{"meshward", "demo-app", "orders"}, Port: 8083, Protocol: "http",
						Upstreams: []Upstream{{"catalog", "127.0.0.1:9003"}, {"payments", "127.0.0.1:9004"}}},
					{Name: "payments", Namespace: "default", Command: []string{"meshward", "demo-app", "payments"}, Port: 8084, Protocol: "http"},
				},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", "mesh", tc.file)
			got, err := LoadMesh(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(Mesh{}, "File"), cmpopts.IgnoreUnexported(Mesh{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("LoadMesh (-want +got):\n%s", diff)
			}
			if got.PoliciesDir() != filepath.Join("testdata", "mesh", "policies") {
				t.Errorf("PoliciesDir = %q", got.PoliciesDir())
			}
		})
	}
}

// TestLoadMeshErrors checks the full error text of bad mesh files against
// testdata/TestLoadMeshErrors/<file>.golden.
func TestLoadMeshErrors(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"bad-fields.yaml", "bad-yaml.yaml", "wrong-kind.yaml", "empty.yaml", "truncated.yaml"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			_, err := LoadMesh(filepath.Join("testdata", "mesh", file))
			if err == nil {
				t.Fatal("LoadMesh succeeded on a bad file")
			}
			if len(Errors(err)) == 0 {
				t.Fatalf("error is not a config error: %v", err)
			}
			for _, e := range Errors(err) {
				if e.File == "" || e.Line == 0 && file != "empty.yaml" {
					t.Errorf("error without position: %#v", e)
				}
			}
			checkGolden(t, filepath.Join("testdata", t.Name()+".golden"), err.Error()+"\n")
		})
	}
}

func TestLoadMeshMissingFile(t *testing.T) {
	t.Parallel()
	if _, err := LoadMesh(filepath.Join(t.TempDir(), "nope.yaml")); err == nil {
		t.Fatal("no error for a missing file")
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func TestParseFileStrict(t *testing.T) {
	t.Parallel()
	type spec struct {
		Name  string         `yaml:"name"`
		Ports []int          `yaml:"ports"`
		Tags  map[string]int `yaml:"tags"`
		On    bool           `yaml:"on"`
		Inner struct {
			A string `yaml:"a"`
		} `yaml:"inner"`
	}
	tests := []struct {
		name    string
		in      string
		wantErr []string
	}{
		{name: "ok", in: "name: x\nports: [1, 2]\ntags: {a: 1}\non: true\ninner: {a: b}\n"},
		{name: "unknown", in: "name: x\nnmae: y\n", wantErr: []string{"f.yaml:6: spec.nmae: unknown field (allowed: inner, name, on, ports, tags)"}},
		{name: "duplicate", in: "name: x\nname: y\n", wantErr: []string{"f.yaml:6: spec.name: duplicate field"}},
		{name: "types", in: "ports: [1, x]\non: yes\ninner: [1]\ntags: {a: b}\n", wantErr: []string{
			`f.yaml:5: spec.ports[1]: must be an integer, got "x"`,
			`f.yaml:6: spec.on: must be true or false, got "yes"`,
			`f.yaml:7: spec.inner: must be a mapping, got a list`,
			`f.yaml:8: spec.tags.a: must be an integer, got "b"`,
		}},
		{name: "scalar for list", in: "ports: 8080\n", wantErr: []string{`f.yaml:5: spec.ports: must be a list, got "8080"`}},
		{name: "alias", in: "inner: &a {a: b}\nname: *a\n", wantErr: []string{`f.yaml:6: spec.name: must be a single value, got a mapping`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := "apiVersion: meshward.dev/v1\nkind: Thing\nmetadata: {name: t}\nspec:\n" + indent(tc.in)
			docs, err := ParseFile("f.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			var s spec
			err = docs[0].DecodeSpec(&s)
			var got []string
			for _, e := range Errors(err) {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tc.wantErr, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func indent(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestParseFileMultiDoc(t *testing.T) {
	t.Parallel()
	src := "# comment only\n---\napiVersion: meshward.dev/v1\nkind: A\nmetadata: {name: a}\n---\n---\napiVersion: meshward.dev/v1\nkind: B\nmetadata: {name: b, namespace: ops}\nspec: {}\n"
	docs, err := ParseFile("m.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range docs {
		got = append(got, d.Ref()+"@"+strconv.Itoa(d.Line))
	}
	if diff := cmp.Diff([]string{"A a@3", "B ops/b@8"}, got); diff != "" {
		t.Errorf("documents (-want +got):\n%s", diff)
	}
}

func FuzzParseFile(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/mesh/*.yaml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("apiVersion: meshward.dev/v1\nkind: Mesh\nmetadata: {name: x}\nspec: {services: [{name: a, port: 1}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMesh("fuzz.yaml", data)
		if err != nil {
			for _, e := range Errors(err) {
				if e.File != "fuzz.yaml" {
					t.Fatalf("error without file: %v", e)
				}
			}
			if len(Errors(err)) == 0 {
				t.Fatalf("error is not a config error: %v", err)
			}
			return
		}
		if m.TrustDomain == "" || len(m.Services) == 0 {
			t.Fatalf("valid mesh without defaults: %+v", m)
		}
		for _, s := range m.Services {
			if s.Port < 1 || s.Port > 65535 || s.Namespace == "" || s.Protocol == "" {
				t.Fatalf("invalid service passed validation: %+v", s)
			}
		}
	})
}

func TestMeshUser(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		user    string
		wantErr string
	}{
		{name: "name", user: "nobody"},
		{name: "uid", user: "65534"},
		{name: "name with dot and dash", user: "app.svc-1"},
		{name: "leading dash", user: "-x", wantErr: `mesh.yaml:10: spec.services[0].user: "-x" is not a user name or a numeric uid`},
		{name: "space", user: "a b", wantErr: `mesh.yaml:10: spec.services[0].user: "a b" is not a user name or a numeric uid`},
		{name: "uid too large", user: "4294967295", wantErr: `is not a user name or a numeric uid`},
		{name: "too long", user: strings.Repeat("a", 33), wantErr: `is not a user name or a numeric uid`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			doc := "apiVersion: meshward.dev/v1\nkind: Mesh\nmetadata: {name: m}\nspec:\n  trustDomain: m.local\n  services:\n    - name: a\n      port: 8080\n      command: [sleep, '1']\n      user: " + strconv.Quote(tc.user) + "\n"
			m, err := ParseMesh("mesh.yaml", []byte(doc))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.Services[0].User != tc.user {
					t.Fatalf("User = %q; want %q", m.Services[0].User, tc.user)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v; want %q", err, tc.wantErr)
			}
		})
	}
}

func TestMeshAllowUpgrades(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		protocol string
		allow    string
		wantErr  string
	}{
		{name: "tcp", protocol: "http", allow: "[tcp]"},
		{name: "two", protocol: "http", allow: "[tcp, my-proto]"},
		{name: "h2c", protocol: "http", allow: "[h2c]", wantErr: `spec.services[0].allowUpgrades[0]: "h2c" cannot be allowed`},
		{name: "H2C", protocol: "http", allow: "[tcp, H2C]", wantErr: `spec.services[0].allowUpgrades[1]: "H2C" cannot be allowed`},
		{name: "HTTP version", protocol: "http", allow: "[HTTP]", wantErr: `"HTTP" cannot be allowed`},
		{name: "with version", protocol: "http", allow: "[websocket/13]", wantErr: `is not a protocol name`},
		{name: "empty", protocol: "http", allow: "['']", wantErr: `empty protocol name`},
		{name: "not http", protocol: "grpc", allow: "[tcp]", wantErr: `spec.services[0].allowUpgrades: applies to protocol http only, not grpc`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			doc := "apiVersion: meshward.dev/v1\nkind: Mesh\nmetadata: {name: m}\nspec:\n  trustDomain: m.local\n  services:\n    - name: a\n      port: 8080\n      protocol: " + tc.protocol + "\n      allowUpgrades: " + tc.allow + "\n"
			_, err := ParseMesh("mesh.yaml", []byte(doc))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v; want %q", err, tc.wantErr)
			}
		})
	}
}

func TestMeshServiceAccount(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: meshward.dev/v1\nkind: Mesh\nmetadata: {name: m}\nspec:\n  trustDomain: m.local\n  services:\n"
	tests := []struct {
		name     string
		services string
		want     []string // the services' identities
		wantErr  string
	}{
		{name: "default is the name", services: "    - {name: orders, port: 8080}\n", want: []string{"spiffe://m.local/ns/default/sa/orders"}},
		{name: "service account", services: "    - {name: orders, port: 8080, serviceAccount: orders-sa}\n", want: []string{"spiffe://m.local/ns/default/sa/orders-sa"}},
		{name: "with namespace", services: "    - {name: orders, namespace: shop, port: 8080, serviceAccount: orders-sa}\n", want: []string{"spiffe://m.local/ns/shop/sa/orders-sa"}},
		{name: "same account in two namespaces", services: "    - {name: a, namespace: x, port: 8080, serviceAccount: s}\n    - {name: b, namespace: y, port: 8081, serviceAccount: s}\n",
			want: []string{"spiffe://m.local/ns/x/sa/s", "spiffe://m.local/ns/y/sa/s"}},
		{name: "not a name", services: "    - {name: orders, port: 8080, serviceAccount: Orders_SA}\n",
			wantErr: `mesh.yaml:7: spec.services[0].serviceAccount: "Orders_SA" is not a valid name`},
		{name: "shared account", services: "    - {name: a, port: 8080, serviceAccount: s}\n    - {name: b, port: 8081, serviceAccount: s}\n",
			wantErr: `mesh.yaml:8: spec.services[1].serviceAccount: "s" in namespace "default" is already the identity of spec.services[0] (a)`},
		{name: "another service's name", services: "    - {name: a, port: 8080, serviceAccount: b}\n    - {name: b, port: 8081}\n",
			wantErr: `spec.services[1].serviceAccount: "b" in namespace "default" is already the identity of spec.services[0] (a)`},
		{name: "wrong type", services: "    - {name: a, port: 8080, serviceAccount: [x]}\n", wantErr: "spec.services[0].serviceAccount"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseMesh("mesh.yaml", []byte(head+tc.services))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			td := spiffeid.RequireTrustDomainFromString(m.TrustDomain)
			var got []string
			for i := range m.Services {
				id, err := m.Services[i].ID(td)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, id.String())
				if s, ok := m.ServiceByID(id); !ok || s.Name != m.Services[i].Name {
					t.Errorf("ServiceByID(%s) = %v, %v; want %s", id, s, ok, m.Services[i].Name)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("identities (-want +got):\n%s", diff)
			}
		})
	}
}
