acl {
  enabled = true
  default_policy = "deny"
}
connect {
  enabled = true
  ca_config {
    leaf_cert_ttl = "2160h"
  }
}
