package linkerd

import (
	"strings"
	"testing"

	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/scan/manifest"
	"meshward.dev/meshward/internal/scan/rules/ruletest"
)

func linkerdConfig(values string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: linkerd-config\n  namespace: linkerd\ndata:\n  values: |\n" + values
}

// namespace is an injected Namespace with extra annotation lines.
func namespace(name, annotations string) string {
	return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name + "\n  annotations:\n    linkerd.io/inject: \"enabled\"\n" + annotations
}

// workload is a controller of kind in ns whose pod template has the given
// extra labels, annotations (both indented for the template) and
// container lines.
func workload(kind, ns, name, labels, annotations, container string) string {
	if annotations != "" {
		annotations = "      annotations:\n" + annotations
	}
	return `apiVersion: apps/v1
kind: ` + kind + `
metadata:
  name: ` + name + `
  namespace: ` + ns + `
spec:
  selector:
    matchLabels:
      app: "` + name + `"
  template:
    metadata:
      labels:
        app: "` + name + `"
` + labels + annotations + `    spec:
      containers:
      - name: app
        image: example/` + name + `:1
` + container
}

func docs(ds ...string) map[string]string {
	return map[string]string{"m.yaml": strings.Join(ds, "---\n")}
}

const server = `apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata:
  name: web-http
  namespace: emojivoto
spec:
  podSelector:
    matchLabels:
      app: web
  port: 8080
  proxyProtocol: HTTP/1
`

func serverAuthorization(client string) string {
	return `apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata:
  name: web-callers
  namespace: emojivoto
spec:
  server:
    name: web-http
  client:
` + client
}

const meshTLSClient = "    meshTLS:\n      serviceAccounts:\n      - name: vote-bot\n"

func TestRules(t *testing.T) {
	t.Parallel()
	denyNS := namespace("emojivoto", "    config.linkerd.io/default-inbound-policy: \"deny\"\n")
	web := workload("Deployment", "emojivoto", "web", "", "", "")
	ann := func(k, v string) string { return "        " + k + ": \"" + v + "\"\n" }
	const dp = "config.linkerd.io/default-inbound-policy"
	cpLabel := "        linkerd.io/control-plane-component: identity\n"
	webPorts := workload("Deployment", "emojivoto", "web", "", "", "        ports:\n        - containerPort: 8080\n        - containerPort: 9990\n")
	openCluster := linkerdConfig("    proxy:\n      defaultInboundPolicy: all-unauthenticated\n")
	adminServer := strings.NewReplacer("web-http", "web-admin", "8080", "9990").Replace(server)
	ruletest.Run(t, Rules(), []ruletest.Case{
		ruletest.Fires("admin port without a Server, cluster open", "MW-LINKERD-013", docs(openCluster, namespace("emojivoto", ""), webPorts, server)),
		ruletest.Fires("admin port without a Server, cluster default not in input", "MW-LINKERD-013", docs(namespace("emojivoto", ""), webPorts, server)),
		ruletest.Clean("every port has a Server", "MW-LINKERD-013", docs(openCluster, namespace("emojivoto", ""), webPorts, server, adminServer)),
		ruletest.Clean("admin port without a Server, namespace denies", "MW-LINKERD-013", docs(openCluster, denyNS, webPorts, server)),
		ruletest.Clean("admin port skipped by the proxy", "MW-LINKERD-013", docs(openCluster, namespace("emojivoto", ""), strings.Replace(webPorts, "    spec:\n      containers:", "      annotations:\n        config.linkerd.io/skip-inbound-ports: \"9990\"\n    spec:\n      containers:", 1), server)),
		ruletest.Fires("cluster default unset (all-unauthenticated)", "MW-LINKERD-001", docs(linkerdConfig("    proxy:\n      logLevel: info\n"))),
		ruletest.Clean("cluster default deny", "MW-LINKERD-001", docs(linkerdConfig("    proxy:\n      defaultInboundPolicy: deny\n"))),
		ruletest.Fires("namespace cluster-unauthenticated", "MW-LINKERD-002", docs(namespace("booksapp", "    "+dp+": \"cluster-unauthenticated\"\n"), workload("Deployment", "booksapp", "authors", "", "", ""))),
		ruletest.Clean("namespace all-authenticated", "MW-LINKERD-002", docs(namespace("booksapp", "    "+dp+": \"all-authenticated\"\n"), workload("Deployment", "booksapp", "authors", "", "", ""))),
		ruletest.Fires("workload in audit", "MW-LINKERD-003", docs(namespace("booksapp", ""), workload("Deployment", "booksapp", "books", "", ann(dp, "audit"), ""))),
		ruletest.Clean("workload denies by default", "MW-LINKERD-003", docs(namespace("booksapp", ""), workload("Deployment", "booksapp", "books", "", ann(dp, "deny"), ""))),
		ruletest.Fires("workload opts out in an injected namespace", "MW-LINKERD-004", docs(namespace("emojivoto", ""), workload("Deployment", "emojivoto", "voting", "", ann("linkerd.io/inject", "disabled"), ""))),
		ruletest.Clean("workload injected", "MW-LINKERD-004", docs(namespace("emojivoto", ""), workload("Deployment", "emojivoto", "voting", "", "", ""))),
		ruletest.Fires("outbound port skipped", "MW-LINKERD-005", docs(namespace("obs", ""), workload("DaemonSet", "obs", "agent", "", ann("config.linkerd.io/skip-outbound-ports", "4317"), ""))),
		ruletest.Clean("opaque port, none skipped", "MW-LINKERD-005", docs(namespace("obs", ""), workload("DaemonSet", "obs", "agent", "", ann("config.linkerd.io/opaque-ports", "4317"), ""))),
		ruletest.Fires("app runs as 2102", "MW-LINKERD-006", docs(namespace("emojivoto", ""), workload("Deployment", "emojivoto", "web", "", "", "        securityContext:\n          runAsUser: 2102\n"))),
		ruletest.Clean("app runs as 1000", "MW-LINKERD-006", docs(namespace("emojivoto", ""), workload("Deployment", "emojivoto", "web", "", "", "        securityContext:\n          runAsUser: 1000\n"))),
		ruletest.Fires("authorization of unauthenticated clients", "MW-LINKERD-007", docs(server, serverAuthorization("    unauthenticated: true\n"))),
		ruletest.Clean("authorization of meshTLS clients", "MW-LINKERD-007", docs(server, serverAuthorization(meshTLSClient))),
		ruletest.Fires("unauthenticated clients of one network", "MW-LINKERD-008", docs(server, serverAuthorization("    unauthenticated: true\n    networks:\n    - cidr: 10.20.0.0/16\n"))),
		ruletest.Clean("meshTLS clients", "MW-LINKERD-008", docs(server, serverAuthorization(meshTLSClient))),
		ruletest.Fires("Server selecting no pod", "MW-LINKERD-009", docs(denyNS, web, strings.Replace(server, "app: web", "app: emoji", 1))),
		ruletest.Clean("Server selecting web", "MW-LINKERD-009", docs(denyNS, web, server)),
		ruletest.Fires("issuer lifetime a year", "MW-LINKERD-010", docs(linkerdConfig("    proxy:\n      defaultInboundPolicy: all-authenticated\n    identity:\n      issuer:\n        issuanceLifetime: 8760h0m0s\n"))),
		ruletest.Clean("issuer lifetime a day", "MW-LINKERD-010", docs(linkerdConfig("    proxy:\n      defaultInboundPolicy: all-authenticated\n    identity:\n      issuer:\n        issuanceLifetime: 24h0m0s\n"))),
		ruletest.Fires("Server accessPolicy all-unauthenticated", "MW-LINKERD-011", docs(denyNS, web, server+"  accessPolicy: all-unauthenticated\n")),
		ruletest.Clean("Server accessPolicy deny", "MW-LINKERD-011", docs(denyNS, web, server+"  accessPolicy: deny\n")),
		ruletest.Fires("control-plane component open by design", "MW-LINKERD-012", docs(namespace("linkerd", ""), workload("Deployment", "linkerd", "linkerd-identity", cpLabel, ann(dp, "all-unauthenticated"), ""))),
		ruletest.Clean("the same annotation on an app", "MW-LINKERD-012", docs(namespace("linkerd", ""), workload("Deployment", "linkerd", "linkerd-identity", "", ann(dp, "all-unauthenticated"), ""))),
	})
}

// Without linkerd-config in the input the cluster default is Linkerd's
// install default, not a stated fact: the finding is low and unverified;
// with an open linkerd-config it is high.
func TestPortWithoutServerSeverity(t *testing.T) {
	t.Parallel()
	webPorts := workload("Deployment", "emojivoto", "web", "", "", "        ports:\n        - containerPort: 8080\n        - containerPort: 9990\n")
	for _, tc := range []struct {
		name     string
		docs     []string
		want     scan.Severity
		wantText string
	}{
		{"cluster default not in input", []string{namespace("emojivoto", ""), webPorts, server}, scan.SeverityLow, "Unverified: the cluster default (linkerd-config) is not in the input"},
		{"cluster default open", []string{linkerdConfig("    proxy:\n      defaultInboundPolicy: all-unauthenticated\n"), namespace("emojivoto", ""), webPorts, server}, scan.SeverityHigh, "none for 9990"},
		{"namespace default open", []string{namespace("emojivoto", "    config.linkerd.io/default-inbound-policy: \"cluster-unauthenticated\"\n"), webPorts, server}, scan.SeverityHigh, "namespace default cluster-unauthenticated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			objs, err := manifest.Decode("m.yaml", []byte(strings.Join(tc.docs, "---\n")))
			if err != nil {
				t.Fatal(err)
			}
			got := checkPortsWithoutServer(scan.NewModel(objs, ruletest.Now))
			if len(got) != 1 {
				t.Fatalf("got %d findings, want 1: %+v", len(got), got)
			}
			if got[0].Severity != tc.want || !strings.Contains(got[0].Message, tc.wantText) {
				t.Errorf("got %s %q, want %s containing %q", got[0].Severity, got[0].Message, tc.want, tc.wantText)
			}
		})
	}
}
