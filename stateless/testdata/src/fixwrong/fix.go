package main

import "github.com/hothost/hothost/abi"

var Fix = abi.Module{Name: "coinfix"} // want `package-level variable Fix must have type abi.Fix \(the descriptor the host looks up\), not github.com/hothost/hothost/abi.Module`

var counted int // want `package-level variable counted is state kept between calls`

var Repair = abi.Fix{Name: "other"} // want `package-level variable Repair is state kept between calls`

func init() {
	Fix.Name = "coinfix" // want `init does more than register: it assigns to something other than the descriptor \(Module or Fix\)`
}
