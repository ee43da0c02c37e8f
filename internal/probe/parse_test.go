package probe

import (
	"bytes"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/testpki"
)

func TestParseTarget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    Target
		wantErr string
	}{
		{in: "127.0.0.1:8443", want: Target{"127.0.0.1", 8443}},
		{in: "Payments.Shop.svc:443", want: Target{"payments.shop.svc", 443}},
		{in: "localhost:1", want: Target{"localhost", 1}},
		{in: "[::1]:15001", want: Target{"::1", 15001}},
		{in: "[2001:DB8::1]:65535", want: Target{"2001:db8::1", 65535}},
		{in: "host.example.:80", want: Target{"host.example.", 80}},
		{in: "", wantErr: "empty"},
		{in: "127.0.0.1", wantErr: "not HOST:PORT"},
		{in: ":443", wantErr: "host is empty"},
		{in: "host:", wantErr: "port"},
		{in: "host:0", wantErr: "port"},
		{in: "host:65536", wantErr: "port"},
		{in: "host:https", wantErr: "port"},
		{in: "host:+80", wantErr: "port"},
		{in: "host:080", wantErr: "port"},
		{in: "::1:443", wantErr: "not HOST:PORT"},
		{in: "[::ffff:1.2.3.4]:1", wantErr: "not an IPv6"},
		{in: "[fe80::1%eth0]:1", wantErr: ""},
		{in: "[1.2.3.4]:1", wantErr: "not an IPv6"},
		{in: "bad_host!:1", wantErr: "not allowed"},
		{in: "-bad.example:1", wantErr: "starts or ends"},
		{in: "a..b:1", wantErr: "empty or over-long label"},
		{in: "http://host:80", wantErr: "not HOST:PORT"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTarget(tc.in)
			if tc.in == "[fe80::1%eth0]:1" { // zones are kept
				if err != nil || got.Host != "fe80::1%eth0" {
					t.Fatalf("ParseTarget(%q) = %+v, %v", tc.in, got, err)
				}
				return
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseTarget(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseTarget(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

// FuzzParseTarget: whatever parses formats to a string that parses to the
// same target, and the host never holds a port separator outside IPv6.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"127.0.0.1:8443", "[::1]:1", "a.b:65535", "host:0", ":1", "[fe80::1%lo]:9", "x:+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			return
		}
		if tg.Port == 0 || tg.Host == "" {
			t.Fatalf("ParseTarget(%q) = %+v without error", s, tg)
		}
		again, err := ParseTarget(tg.String())
		if err != nil {
			t.Fatalf("ParseTarget(%q) = %+v, but its String %q does not parse: %v", s, tg, tg.String(), err)
		}
		if again != tg {
			t.Fatalf("round trip %q -> %+v -> %q -> %+v", s, tg, tg.String(), again)
		}
	})
}

// TestParseBundle reads the fixtures in testdata/bundle; -update rewrites
// good.pem (the bad fixtures are hand-written).
func TestParseBundle(t *testing.T) {
	t.Parallel()
	goodPath := filepath.Join("testdata", "bundle", "good.pem")
	if *update {
		ca := testpki.NewCA(t, "fixture.test")
		inter := ca.Intermediate(t)
		data := append([]byte("subject=CN = root fixture.test\n"), testpki.PEM(ca.Cert, inter.Cert)...)
		if err := os.WriteFile(goodPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		file    string
		want    int
		wantErr string
	}{
		{file: "good.pem", want: 2},
		{file: "empty.pem", wantErr: "empty.pem: file is empty"},
		{file: "notpem.txt", wantErr: "notpem.txt:1: no PEM CERTIFICATE block"},
		{file: "key.pem", wantErr: `key.pem:3: PEM block type "PRIVATE KEY", want CERTIFICATE`},
		{file: "truncated.pem", wantErr: "truncated.pem:2: malformed or truncated PEM block"},
		{file: "corrupt.pem", wantErr: "corrupt.pem:1: certificate 1: x509:"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "bundle", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseBundle(tc.file, data)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("ParseBundle error = %v, want prefix %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != tc.want {
				t.Fatalf("ParseBundle = %d certs, %v; want %d", len(got), err, tc.want)
			}
		})
	}
}

// FuzzParseBundle: no panic; a parsed bundle has certificates, and
// re-encoding them parses to the same certificates.
func FuzzParseBundle(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "bundle", "*"))
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseBundle("fuzz.pem", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.pem") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if len(certs) == 0 {
			t.Fatal("no error and no certificates")
		}
		var buf bytes.Buffer
		for _, c := range certs {
			_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		}
		again, err := ParseBundle("again.pem", buf.Bytes())
		if err != nil || len(again) != len(certs) {
			t.Fatalf("re-encoded bundle: %d certs, %v; want %d", len(again), err, len(certs))
		}
		for i := range certs {
			if !certs[i].Equal(again[i]) {
				t.Fatalf("certificate %d changed on re-encoding", i)
			}
		}
	})
}
