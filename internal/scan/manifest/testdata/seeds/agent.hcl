# A Consul server agent with the mistakes attackers look for. Scan with:
#   meshward scan examples/insecure-consul/
datacenter = "dc1"
server     = true
data_dir   = "/opt/consul"

acl {
  enabled        = true
  default_policy = "allow"
}

tls {
  defaults {
    verify_incoming = false
    verify_outgoing = true
  }
  internal_rpc {
    verify_server_hostname = false
  }
}

connect {
  enabled = true
  ca_config {
    leaf_cert_ttl = "8760h"
  }
}
