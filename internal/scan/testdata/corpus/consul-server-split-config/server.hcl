datacenter = "dc1"
server     = true
bootstrap_expect = 3
