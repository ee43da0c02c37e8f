package proxy

import "time"

// Defaults for Limits and Timeouts; a zero field in Config takes these.
const (
	DefaultMaxHeaderBytes         = 64 << 10
	DefaultMaxConcurrentStreams   = 250
	DefaultMaxConnsPerPeer        = 256
	DefaultMaxResetsPerConnMinute = 500
	DefaultMaxHeaderBytesPerPeer  = 1 << 20 // 16 heads at the 64 KiB limit, or ~2,000 of the usual half-kilobyte ones, in flight
	DefaultMaxEndpointsConns      = 0       // unlimited pooled conns per endpoint (HTTP/2 opens more when streams saturate)

	DefaultConnectTimeout        = 5 * time.Second
	DefaultHandshakeTimeout      = 5 * time.Second
	DefaultReadHeaderTimeout     = 10 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultIdleTimeout           = 5 * time.Minute
	DefaultDrainTimeout          = 20 * time.Second
	DefaultEjectTime             = 10 * time.Second
)

// PeerIdentityHeader carries the verified SPIFFE ID of the caller to the
// application. Any copy arriving from elsewhere is removed first.
const PeerIdentityHeader = "X-Meshward-Peer-Identity"

func (l *Limits) setDefaults() {
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if l.MaxConnsPerPeer == 0 {
		l.MaxConnsPerPeer = DefaultMaxConnsPerPeer
	}
	if l.MaxHeaderBytesPerPeer == 0 {
		l.MaxHeaderBytesPerPeer = DefaultMaxHeaderBytesPerPeer
	}
	if l.MaxResetsPerConnMinute == 0 {
		l.MaxResetsPerConnMinute = DefaultMaxResetsPerConnMinute
	}
}

func (t *Timeouts) setDefaults() {
	if t.Connect == 0 {
		t.Connect = DefaultConnectTimeout
	}
	if t.Handshake == 0 {
		t.Handshake = DefaultHandshakeTimeout
	}
	if t.ReadHeader == 0 {
		t.ReadHeader = DefaultReadHeaderTimeout
	}
	if t.ResponseHeader == 0 {
		t.ResponseHeader = DefaultResponseHeaderTimeout
	}
	if t.Idle == 0 {
		t.Idle = DefaultIdleTimeout
	}
	if t.Drain == 0 {
		t.Drain = DefaultDrainTimeout
	}
	if t.Eject == 0 {
		t.Eject = DefaultEjectTime
	}
}
