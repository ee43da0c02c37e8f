acl {
  enabled = true
  default_policy = "deny"
}
tls {
  defaults {
    ca_file = "/etc/consul/ca.pem"
  }
}
