tls {
  defaults {
    ca_file         = "/etc/consul.d/ca.pem"
    cert_file       = "/etc/consul.d/server.pem"
    key_file        = "/etc/consul.d/server-key.pem"
    verify_incoming = true
    verify_outgoing = true
  }
}
