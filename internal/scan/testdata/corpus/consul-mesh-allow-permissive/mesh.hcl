Kind = "mesh"
AllowEnablingPermissiveMutualTLS = true
TransparentProxy {
  MeshDestinationsOnly = true
}
