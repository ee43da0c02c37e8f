// Package cert holds the scanner's certificate rules. It finds PEM
// certificates and keys in Secrets and ConfigMaps (Istio cacerts, Linkerd
// identity issuer and trust roots, Consul CA, any TLS secret) and checks
// expiry against the model's evaluation time, lifetime, key and signature
// strength, and CA private keys kept where no CA key belongs.
package cert
