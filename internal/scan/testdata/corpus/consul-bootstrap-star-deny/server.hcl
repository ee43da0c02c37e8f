datacenter       = "dc1"
data_dir         = "/opt/consul"
server           = true
bootstrap_expect = 3
acl {
  enabled        = true
  default_policy = "deny"
}
tls {
  defaults {
    verify_incoming = true
    verify_outgoing = true
    tls_min_version = "TLSv1_2"
  }
}
config_entries {
  bootstrap = [
    {
      kind = "service-intentions"
      name = "*"
      sources = [
        {
          name   = "*"
          action = "deny"
        }
      ]
    }
  ]
}
