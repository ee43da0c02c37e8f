package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files")

// TestPrintCA pins the text of `meshward ca show` and `ca status` (golden
// files; refresh with go test ./internal/cli -run TestPrintCA -update).
func TestPrintCA(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	cert := func(role, state, serial string, notAfter time.Time) *apiv1.Certificate {
		return &apiv1.Certificate{Role: role, State: state, Serial: serial, Fingerprint: "ab12cd34ef56ab12cd34ef56ab12cd34", NotAfter: notAfter.Unix()}
	}
	tests := []struct {
		name     string
		st       *apiv1.CAStatusResponse
		rotation bool
	}{
		{"idle", &apiv1.CAStatusResponse{
			TrustDomain: "shop.local", Phase: "idle", PhaseDetail: "no root rotation under way",
			Certificates: []*apiv1.Certificate{
				cert("root", "active", "1c500330de4de08b9f", now.Add(365*24*time.Hour)),
				cert("intermediate", "active", "40cf15beae1283a4", now.Add(7*24*time.Hour)),
			},
			NextIntermediateRotation: now.Add(84 * time.Hour).Unix(),
		}, false},
		{"prepare-lagging", &apiv1.CAStatusResponse{
			TrustDomain: "shop.local", Phase: "prepare",
			PhaseDetail: "the new root is in the bundle; waiting until every connected workload holds it",
			Certificates: []*apiv1.Certificate{
				cert("root", "active", "01", now.Add(100*24*time.Hour)),
				cert("root", "staged", "02", now.Add(365*24*time.Hour)),
				cert("intermediate", "active", "03", now.Add(7*24*time.Hour)),
			},
			Lagging:                  []*apiv1.Lagging{{SpiffeId: "spiffe://shop.local/ns/default/sa/orders", Reason: "does not hold the new root in its bundle yet"}},
			NextIntermediateRotation: now.Add(time.Hour).Unix(),
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			printCA(&b, tc.st, now, tc.rotation)
			path := filepath.Join("testdata", "TestPrintCA", tc.name+".golden")
			if *updateGolden {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), b.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}
