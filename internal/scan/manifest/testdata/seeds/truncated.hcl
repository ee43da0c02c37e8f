acl {
  enabled = 
