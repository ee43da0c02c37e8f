package consul

import (
	"strings"
	"testing"

	"meshward.dev/meshward/internal/scan/rules/ruletest"
)

func one(name, content string) map[string]string { return map[string]string{name: content} }

const starToStar = `Kind = "service-intentions"
Name = "*"
Sources = [
  {
    Name   = "*"
    Action = "allow"
  }
]
`

const apiIntentions = `apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata:
  name: api
  namespace: default
spec:
  destination:
    name: api
  sources:
  - name: web
    action: allow
  - name: "*"
    action: allow
`

// secureAgent has ACLs on with default deny and verifying TLS 1.2.
const secureAgent = `datacenter = "dc1"
acl {
  enabled        = true
  default_policy = "deny"
}
tls {
  defaults {
    verify_incoming = true
    verify_outgoing = true
    tls_min_version = "TLSv1_2"
  }
}
connect {
  enabled = true
  ca_config {
    leaf_cert_ttl = "72h"
  }
}
`

const bareServer = `datacenter = "dc1"
data_dir   = "/opt/consul"
server     = true
bootstrap_expect = 3
`

const helmSecure = `global:
  datacenter: dc1
  tls:
    enabled: true
    enableAutoEncrypt: true
    verify: true
  acls:
    manageSystemACLs: true
connectInject:
  enabled: true
  default: true
`

const serviceDefaults = `Kind = "service-defaults"
Name = "web"
Protocol = "http"
MutualTLSMode = "permissive"
`

const mesh = `apiVersion: consul.hashicorp.com/v1alpha1
kind: Mesh
metadata:
  name: mesh
  namespace: consul
spec:
  transparentProxy:
    meshDestinationsOnly: true
`

// deployment is an injected Deployment web with extra pod annotations
// (indented for the template) and container lines.
func deployment(annotations, container string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  selector:
    matchLabels:
      app: "web"
  template:
    metadata:
      labels:
        app: "web"
      annotations:
        consul.hashicorp.com/connect-inject: "true"
` + annotations + `    spec:
      containers:
      - name: app
        image: example/web:1
` + container
}

const webService = `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  selector: {app: web}
  ports:
  - port: 80
`

func intentionTo(dest string) string {
	return `apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata:
  name: ` + dest + `
  namespace: default
spec:
  destination:
    name: ` + dest + `
  sources:
  - name: web
    action: allow
  - name: "*"
    action: deny
`
}

func TestRules(t *testing.T) {
	t.Parallel()
	agent := func(old, new string) map[string]string {
		if !strings.Contains(secureAgent, old) {
			t.Fatalf("secureAgent lacks %q", old)
		}
		return one("agent.hcl", strings.Replace(secureAgent, old, new, 1))
	}
	app := func(annotations, container string) map[string]string {
		return map[string]string{"app.yaml": deployment(annotations, container), "values.yaml": helmSecure}
	}
	ruletest.Run(t, Rules(), []ruletest.Case{
		ruletest.Fires("* to * allowed", "MW-CONSUL-001", one("i.hcl", starToStar)),
		ruletest.Clean("* to * denied", "MW-CONSUL-001", one("i.hcl", strings.Replace(starToStar, `"allow"`, `"deny"`, 1))),
		ruletest.Fires("* allowed to api", "MW-CONSUL-002", one("i.yaml", apiIntentions)),
		ruletest.Clean("* denied to api", "MW-CONSUL-002", one("i.yaml", strings.Replace(apiIntentions, "action: allow\n", "action: deny\n", 2))),
		ruletest.Fires("ACLs on, default policy unset", "MW-CONSUL-003", one("server.hcl", "datacenter = \"dc1\"\nacl {\n  enabled = true\n}\n")),
		ruletest.Clean("ACLs on, default deny", "MW-CONSUL-003", one("agent.hcl", secureAgent)),
		ruletest.Fires("chart TLS without verify", "MW-CONSUL-004", one("values.yaml", "global:\n  name: consul\n  tls:\n    enabled: true\n    verify: false\n")),
		ruletest.Clean("chart TLS verifying", "MW-CONSUL-004", one("values.yaml", helmSecure)),
		ruletest.Fires("permissive service defaults", "MW-CONSUL-005", one("web-defaults.hcl", serviceDefaults)),
		ruletest.Clean("strict service defaults", "MW-CONSUL-005", one("web-defaults.hcl", strings.Replace(serviceDefaults, "permissive", "strict", 1))),
		ruletest.Fires("mesh destinations unset", "MW-CONSUL-006", one("mesh.yaml", strings.Replace(mesh, "  transparentProxy:\n    meshDestinationsOnly: true\n", "  allowEnablingPermissiveMutualTLS: false\n", 1))),
		ruletest.Clean("mesh destinations only", "MW-CONSUL-006", one("mesh.yaml", mesh)),
		ruletest.Fires("90-day leaf certificates", "MW-CONSUL-007", agent(`"72h"`, `"2160h"`)),
		ruletest.Clean("3-day leaf certificates", "MW-CONSUL-007", one("agent.hcl", secureAgent)),
		ruletest.Fires("workload opts out of injection", "MW-CONSUL-008", map[string]string{"app.yaml": strings.Replace(deployment("", ""), `connect-inject: "true"`, `connect-inject: "false"`, 1), "values.yaml": helmSecure}),
		ruletest.Clean("injected workload", "MW-CONSUL-008", app("", "")),
		ruletest.Fires("outbound port excluded", "MW-CONSUL-009", app("        consul.hashicorp.com/transparent-proxy-exclude-outbound-ports: \"5432\"\n", "")),
		ruletest.Clean("no port excluded", "MW-CONSUL-009", app("", "")),
		ruletest.Fires("app runs as 5995", "MW-CONSUL-010", app("", "        securityContext:\n          runAsUser: 5995\n")),
		ruletest.Clean("app runs as 1000", "MW-CONSUL-010", app("", "        securityContext:\n          runAsUser: 1000\n")),
		ruletest.Fires("intention for an unknown service", "MW-CONSUL-011", map[string]string{"m.yaml": deployment("", "") + "---\n" + webService + "---\n" + intentionTo("paymnets")}),
		ruletest.Clean("intention for a known service", "MW-CONSUL-011", map[string]string{"m.yaml": deployment("", "") + "---\n" + webService + "---\n" + intentionTo("web")}),
		ruletest.Fires("server without ACLs", "MW-CONSUL-012", one("server.hcl", bareServer)),
		ruletest.Clean("server with ACLs", "MW-CONSUL-012", one("server.hcl", bareServer+secureAgent[len(`datacenter = "dc1"`)+1:])),
		ruletest.Fires("server without TLS", "MW-CONSUL-013", one("server.hcl", bareServer)),
		ruletest.Clean("server with TLS", "MW-CONSUL-013", one("server.hcl", bareServer+secureAgent[len(`datacenter = "dc1"`)+1:])),
		ruletest.Fires("TLS 1.0 allowed", "MW-CONSUL-014", agent(`"TLSv1_2"`, `"TLSv1_0"`)),
		ruletest.Clean("TLS 1.2 minimum", "MW-CONSUL-014", one("agent.hcl", secureAgent)),
		ruletest.Fires("bootstrapped * to * allow", "MW-CONSUL-015", one("server.hcl", bareServer+bootstrapIntention("allow"))),
		ruletest.Fires("bootstrapped * to * allow, JSON", "MW-CONSUL-015", one("server.json", `{"server": true, "config_entries": {"bootstrap": [{"Kind": "service-intentions", "Name": "*", "Sources": [{"Name": "*", "Action": "allow"}]}]}}`)),
		ruletest.Clean("bootstrapped * to * deny", "MW-CONSUL-015", one("server.hcl", bareServer+bootstrapIntention("deny"))),
		ruletest.Fires("proxy defaults expose a path", "MW-CONSUL-016", one("pd.yaml", proxyDefaultsExpose)),
		ruletest.Fires("service defaults expose a path, HCL", "MW-CONSUL-016", one("web-defaults.hcl", "Kind = \"service-defaults\"\nName = \"web\"\nExpose {\n  Paths = [\n    {\n      Path          = \"/metrics\"\n      LocalPathPort = 9102\n      ListenerPort  = 20200\n    }\n  ]\n}\n")),
		ruletest.Clean("proxy defaults expose checks only", "MW-CONSUL-016", one("pd.yaml", strings.Replace(proxyDefaultsExpose, exposePaths, "    checks: true\n", 1))),
		ruletest.Fires("mesh allows permissive mTLS", "MW-CONSUL-017", one("mesh.yaml", mesh+"  allowEnablingPermissiveMutualTLS: true\n")),
		ruletest.Clean("mesh forbids permissive mTLS", "MW-CONSUL-017", one("mesh.yaml", mesh+"  allowEnablingPermissiveMutualTLS: false\n")),
	})
}

func bootstrapIntention(action string) string {
	return `config_entries {
  bootstrap = [
    {
      kind = "service-intentions"
      name = "*"
      sources = [
        {
          name   = "*"
          action = "` + action + `"
        }
      ]
    }
  ]
}
`
}

const exposePaths = `    paths:
    - path: /metrics
      listenerPort: 20200
      localPathPort: 9102
`

const proxyDefaultsExpose = `apiVersion: consul.hashicorp.com/v1alpha1
kind: ProxyDefaults
metadata:
  name: global
  namespace: consul
spec:
  expose:
` + exposePaths
