package probe

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ParseBundle reads PEM CERTIFICATE blocks from data, the contents of the
// file name (used in errors, which read "name:line: ..."). Text between
// blocks is ignored, as openssl writes it; a block of another type, a block
// that does not parse, a truncated block or a file without certificates is an
// error.
func ParseBundle(name string, data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		i := bytes.Index(rest, []byte("-----BEGIN"))
		if i < 0 {
			break
		}
		line := lineOf(data, len(data)-len(rest)+i)
		block, next := pem.Decode(rest[i:])
		if block == nil {
			return nil, fmt.Errorf("%s:%d: malformed or truncated PEM block", name, line)
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s:%d: PEM block type %q, want CERTIFICATE", name, line, block.Type)
		}
		if len(block.Headers) != 0 {
			return nil, fmt.Errorf("%s:%d: PEM CERTIFICATE block has headers (encrypted?)", name, line)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: certificate %d: %w", name, line, len(certs)+1, err)
		}
		certs = append(certs, c)
		rest = next
	}
	if len(certs) == 0 {
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, fmt.Errorf("%s: %w", name, errEmptyBundle)
		}
		return nil, fmt.Errorf("%s:1: no PEM CERTIFICATE block found", name)
	}
	return certs, nil
}

var errEmptyBundle = errors.New("file is empty, want PEM CERTIFICATE blocks")

// lineOf returns the 1-based line number of byte offset off in data.
func lineOf(data []byte, off int) int {
	return bytes.Count(data[:off], []byte("\n")) + 1
}
