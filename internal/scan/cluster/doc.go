// Package cluster reads a live Kubernetes cluster, read-only, for the
// scanner: it lists the resource kinds the rules need with client-go's
// dynamic client and turns them into scan.Objects. It is the only package
// that imports client-go, and only `meshward scan` imports it, so the
// sidecar does not carry it. It does not judge what it reads.
package cluster
