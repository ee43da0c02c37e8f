// Package manifest decodes scanner inputs into scan.Objects that remember
// their file and line: Kubernetes YAML and JSON (multi-document, List kinds,
// Helm and kustomize output), Consul agent configuration and config entries
// (HCL or JSON), Helm values files and meshward's own documents. YAML is
// read with config.ReadYAML and config.DecodeTree, the positions layer
// `meshward policy lint` reads with too. It does not judge what it reads
// (see the rules packages) and never talks to a cluster (see cluster).
package manifest
