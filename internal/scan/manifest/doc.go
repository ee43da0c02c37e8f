// Package manifest decodes scanner inputs into scan.Objects that remember
// their file and line: Kubernetes YAML and JSON (multi-document, List kinds,
// Helm and kustomize output), Consul agent configuration and config entries
// (HCL or JSON), Helm values files and meshward's own documents. It does not
// judge what it reads (see the rules packages) and never talks to a cluster
// (see cluster).
package manifest
