acl {
  enabled = true
  default_policy = "deny"
}
tls {
  internal_rpc {
    verify_server_hostname = false
  }
}
