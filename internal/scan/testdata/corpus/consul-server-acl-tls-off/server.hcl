datacenter = "dc1"
data_dir   = "/opt/consul"
server     = true
bootstrap_expect = 3
ui_config {
  enabled = true
}
