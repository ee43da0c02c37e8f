package probe

import "time"

// Result is what a probe saw. It holds facts only; Evaluate judges them.
type Result struct {
	Target   string    `json:"target"`
	ProbedAt time.Time `json:"probedAt"`

	// PlaintextHTTP: an HTTP/1.1 request sent without TLS.
	PlaintextHTTP Check `json:"plaintextHTTP"`
	// PlaintextRaw: bytes that are neither TLS nor HTTP, sent without TLS.
	PlaintextRaw Check `json:"plaintextRaw"`
	// SpeaksTLS is true when at least one TLS version was accepted.
	SpeaksTLS bool `json:"speaksTLS"`
	// NoClientCert: a TLS handshake (and a request) without a client
	// certificate. Accepted means the server does not require one.
	NoClientCert Check `json:"noClientCert"`
	// ClientCertRequested: the server asked for a client certificate.
	ClientCertRequested bool `json:"clientCertRequested"`
	// WithClientCert: a handshake presenting --client-cert, when given.
	WithClientCert *Check `json:"withClientCert,omitempty"`

	Versions []Version `json:"versions"`
	// Chain is the certificate chain presented at the highest accepted
	// version, leaf first.
	Chain  []Cert       `json:"chain"`
	Bundle *BundleCheck `json:"bundle,omitempty"`
	Notes  []string     `json:"notes,omitempty"`
}

// Check is the outcome of one attempt: did the server go along, and what
// exactly happened.
type Check struct {
	Accepted bool   `json:"accepted"`
	Detail   string `json:"detail"`
}

// Version is one TLS protocol version and the cipher suites accepted with it.
type Version struct {
	Name     string        `json:"name"`
	ID       uint16        `json:"id"`
	Accepted bool          `json:"accepted"`
	Detail   string        `json:"detail"`
	Suites   []CipherSuite `json:"cipherSuites,omitempty"`
}

// CipherSuite is an accepted cipher suite; Weak says why it is weak, if it
// is.
type CipherSuite struct {
	Name string `json:"name"`
	ID   uint16 `json:"id"`
	Weak string `json:"weak,omitempty"`
}

// Cert describes one certificate of the presented chain.
type Cert struct {
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	Serial      string    `json:"serial"`
	SHA256      string    `json:"sha256"`
	IsCA        bool      `json:"isCA"`
	SelfSigned  bool      `json:"selfSigned"`
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	Lifetime    string    `json:"lifetime"`
	Remaining   string    `json:"remaining"`
	KeyType     string    `json:"keyType"` // RSA, ECDSA, Ed25519, unknown
	KeyBits     int       `json:"keyBits"`
	KeyCurve    string    `json:"keyCurve,omitempty"`
	Signature   string    `json:"signatureAlgorithm"`
	SPIFFEID    string    `json:"spiffeID,omitempty"`
	TrustDomain string    `json:"trustDomain,omitempty"`
	// IDProblem says why the URI SANs are not one valid SPIFFE ID.
	IDProblem string   `json:"spiffeIDProblem,omitempty"`
	DNSNames  []string `json:"dnsNames,omitempty"`
	IPs       []string `json:"ipAddresses,omitempty"`
	URIs      []string `json:"uris,omitempty"`
	// ParseError is set when the certificate could not be parsed; the other
	// fields are then empty.
	ParseError string `json:"parseError,omitempty"`
}

// BundleCheck is the outcome of verifying the chain against --bundle.
type BundleCheck struct {
	File     string `json:"file"`
	Verified bool   `json:"verified"`
	Detail   string `json:"detail"`
}
