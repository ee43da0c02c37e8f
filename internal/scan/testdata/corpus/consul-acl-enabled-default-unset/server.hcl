datacenter = "dc1"
acl {
  enabled = true
}
