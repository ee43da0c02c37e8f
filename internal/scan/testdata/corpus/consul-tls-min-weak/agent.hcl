acl {
  enabled        = true
  default_policy = "deny"
}
tls {
  defaults {
    verify_incoming = true
    verify_outgoing = true
    tls_min_version = "TLSv1_0"
  }
}
