package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"imapcopy.dev/pkg/svcconfig"
	"imapcopy.dev/pkg/syncapi"
)

// config is the api binary's configuration: the api's piece (syncapi.Config) and the
// pieces every fleet binary shares (svcconfig).
type config struct {
	API syncapi.Config
	svcconfig.Fleet
	svcconfig.Admin
}

// parseConfig reads the flags in args over the environment.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("imapcopy-api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.API.RegisterFlags(fs, getenv)
	c.Fleet.RegisterFlags(fs, getenv, `file of task encryption keys, "keyid:base64key" per line, the first one current (required)`)
	c.Admin.RegisterFlags(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return c, errors.Join(c.API.Check(), c.Admin.Check(),
		c.Fleet.Check(`a file with a line "keyid:base64key", such as made by: printf '%s:%s\n' "k$(date +%Y%m%d)" "$(head -c 32 /dev/urandom | base64)"`))
}
