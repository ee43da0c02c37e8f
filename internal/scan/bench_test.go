package scan_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/scan/manifest"
	"meshward.dev/meshward/internal/scan/rules"
)

// synthetic builds a cluster of n objects: 100 namespaces, each with
// Deployments, Services, PeerAuthentications, AuthorizationPolicies,
// DestinationRules and Linkerd/Consul objects, as one multi-document file.
func synthetic(n int) []byte {
	var b strings.Builder
	count := 0
	emit := func(s string) {
		if count >= n {
			return
		}
		b.WriteString("---\n")
		b.WriteString(s)
		count++
	}
	emit("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: istio-system\nspec:\n  mtls:\n    mode: PERMISSIVE\n")
	for i := 0; count < n; i++ {
		ns := fmt.Sprintf("team-%03d", i%100)
		switch i % 10 {
		case 0:
			emit(fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s-%d\n  labels:\n    istio-injection: enabled\n", ns, i))
		case 1, 2, 3:
			emit(fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-%d\n  namespace: %s\nspec:\n  template:\n    metadata:\n      labels:\n        app: app-%d\n      annotations:\n        traffic.sidecar.istio.io/excludeInboundPorts: \"%d\"\n    spec:\n      containers:\n      - name: app\n        image: example/app:1\n        ports:\n        - containerPort: 8080\n", i, ns, i, 9000+i%100))
		case 4:
			emit(fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata:\n  name: app-%d\n  namespace: %s\nspec:\n  selector:\n    app: app-%d\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n", i-3, ns, i-3))
		case 5:
			emit(fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ap-%d\n  namespace: %s\nspec:\n  selector:\n    matchLabels:\n      app: app-%d\n  rules:\n  - from:\n    - source:\n        ipBlocks: [\"10.0.0.0/8\"]\n", i, ns, i-4))
		case 6:
			emit(fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: pa-%d\n  namespace: %s\nspec:\n  selector:\n    matchLabels:\n      app: app-%d\n  mtls:\n    mode: STRICT\n  portLevelMtls:\n    9090:\n      mode: DISABLE\n", i, ns, i-5))
		case 7:
			emit(fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: dr-%d\n  namespace: %s\nspec:\n  host: app-%d.%s.svc.cluster.local\n  trafficPolicy:\n    tls:\n      mode: DISABLE\n", i, ns, i-6, ns))
		case 8:
			emit(fmt.Sprintf("apiVersion: policy.linkerd.io/v1beta1\nkind: ServerAuthorization\nmetadata:\n  name: sa-%d\n  namespace: %s\nspec:\n  server:\n    name: web\n  client:\n    unauthenticated: true\n", i, ns))
		case 9:
			emit(fmt.Sprintf("apiVersion: consul.hashicorp.com/v1alpha1\nkind: ServiceIntentions\nmetadata:\n  name: si-%d\n  namespace: %s\nspec:\n  destination:\n    name: app-%d\n  sources:\n  - name: \"*\"\n    action: allow\n", i, ns, i))
		}
	}
	return []byte(b.String())
}

// BenchmarkScan10k decodes 10,000 objects from YAML, builds the model, runs
// every rule and sorts the findings.
func BenchmarkScan10k(b *testing.B) {
	data := synthetic(10000)
	all := rules.All()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	var findings int
	for b.Loop() {
		objs, err := manifest.Decode("cluster.yaml", data)
		if err != nil {
			b.Fatal(err)
		}
		if len(objs) != 10000 {
			b.Fatalf("%d objects", len(objs))
		}
		res := scan.Run(scan.NewModel(objs, now), all, nil)
		findings = len(res.Findings)
	}
	b.ReportMetric(float64(findings), "findings")
}

// TestScan10kUnderBudget keeps the benchmark honest in plain `go test`: one
// scan of 10,000 objects must produce findings; timing is left to the
// benchmark (tests never assert wall-clock times).
func TestScan10kProducesFindings(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	objs, err := manifest.Decode("cluster.yaml", synthetic(10000))
	if err != nil {
		t.Fatal(err)
	}
	res := scan.Run(scan.NewModel(objs, time.Now()), rules.All(), nil)
	if len(res.Findings) < 1000 {
		t.Errorf("%d findings on the synthetic cluster, want many", len(res.Findings))
	}
}
