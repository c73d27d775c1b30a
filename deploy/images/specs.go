package main

import (
	"strconv"
	"strings"
)

// Spec is one image: the binary it carries and how it is run.
type Spec struct {
	// Name is the image's and the binary's name (the last element of Package).
	Name string
	// Package is the main package, relative to the repository root.
	Package string
	// Listeners are the addresses the binary serves, each under the variable that sets it.
	// The image sets each variable to all interfaces on the service's default port (a
	// service binds 127.0.0.1 by default, which nothing outside a container reaches) and
	// exposes that port.
	Listeners []Listener
	// Cmd is the image's default arguments, replaced by any the user gives: the command
	// line's image runs the suite (`latchkey dev`) when started bare.
	Cmd []string
}

// Listener is one address a binary serves.
type Listener struct {
	// Var is the environment variable that sets the address (its default is 127.0.0.1:Port,
	// in the service's Config; images_test.go holds the two together).
	Var string
	// Port is the TCP port.
	Port int
}

// Specs are the images `make images` builds: one per service, and one for the command line
// (`latchkey`, deploy/allinone/cli; `latchkey dev` runs the all-in-one suite).
var Specs = []Spec{
	{Name: "accounts", Package: "./services/accounts/cmd/accounts", Listeners: []Listener{
		{Var: "ACCOUNTS_GRPC_ADDR", Port: 8081},
		{Var: "ACCOUNTS_HTTP_ADDR", Port: 8091},
	}},
	{Name: "keys", Package: "./services/keys/cmd/keys", Listeners: []Listener{
		{Var: "KEYS_GRPC_ADDR", Port: 8082},
		{Var: "KEYS_HTTP_ADDR", Port: 8092},
	}},
	{Name: "audit", Package: "./services/audit/cmd/audit", Listeners: []Listener{
		{Var: "AUDIT_GRPC_ADDR", Port: 8083},
		{Var: "AUDIT_HTTP_ADDR", Port: 8093},
	}},
	{Name: "ingest-gateway", Package: "./services/ingest-gateway/cmd/ingest-gateway", Listeners: []Listener{
		{Var: "GATEWAY_GRPC_ADDR", Port: 4317},
		{Var: "GATEWAY_HTTP_ADDR", Port: 4318},
	}},
	{Name: "latchkey", Package: "./deploy/allinone/cmd/latchkey", Cmd: []string{"dev"}, Listeners: []Listener{
		{Var: "LATCHKEY_HTTP_ADDR", Port: 8080},
		{Var: "GATEWAY_GRPC_ADDR", Port: 4317},
		{Var: "GATEWAY_HTTP_ADDR", Port: 4318},
	}},
}

// spec returns the Spec named name.
func spec(name string) (Spec, bool) {
	for _, s := range Specs {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}

// specsNamed returns the Specs named in a comma-separated list, all of them for "".
func specsNamed(list string) ([]Spec, []string) {
	if list == "" {
		return Specs, nil
	}
	var out []Spec
	var unknown []string
	for name := range strings.SplitSeq(list, ",") {
		s, ok := spec(strings.TrimSpace(name))
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		out = append(out, s)
	}
	return out, unknown
}

// ExposedPorts is the image config's set: "<port>/tcp" for each listener.
func (s Spec) ExposedPorts() map[string]struct{} {
	ports := map[string]struct{}{}
	for _, l := range s.Listeners {
		ports[strconv.Itoa(l.Port)+"/tcp"] = struct{}{}
	}
	return ports
}

// Env is the image config's environment: HOME, and each listener on all interfaces.
func (s Spec) Env() []string {
	env := []string{"HOME=" + homeDir}
	for _, l := range s.Listeners {
		env = append(env, l.Var+"=:"+strconv.Itoa(l.Port))
	}
	return env
}
