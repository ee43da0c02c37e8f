datacenter = "dc1"
server     = true
acl {
  enabled        = true
  default_policy = "deny"
}
