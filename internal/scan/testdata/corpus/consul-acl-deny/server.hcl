datacenter = "dc1"
acl {
  enabled                  = true
  default_policy           = "deny"
  enable_token_persistence = true
}
tls {
  defaults {
    verify_incoming = true
    verify_outgoing = true
  }
}
