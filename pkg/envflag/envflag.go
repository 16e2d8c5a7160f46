// Package envflag registers command-line flags whose defaults come from environment
// variables, the way every imapcopy binary reads its configuration: a flag wins over
// its variable, the variable over the built-in default.
//
// A variable that does not parse is not a panic and not a silent default: it is
// recorded, and Err reports every such variable at once, naming it and what it expects.
// The usage text of each flag names its variable, so `-h` documents both.
package envflag

import (
	"encoding"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"
)

// Set registers flags on a flag.FlagSet, reading defaults through getenv.
type Set struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
}

// New returns a Set registering on fs; getenv is os.Getenv in main.
func New(fs *flag.FlagSet, getenv func(string) string) *Set {
	return &Set{fs: fs, getenv: getenv}
}

// Err reports the environment variables that did not parse, nil if none.
func (s *Set) Err() error { return errors.Join(s.errs...) }

func usage(env, text string) string { return text + " (env " + env + ")" }

// String registers a string flag.
func (s *Set) String(p *string, name, env, def, text string) {
	if v := s.getenv(env); v != "" {
		def = v
	}
	s.fs.StringVar(p, name, def, usage(env, text))
}

// Bool registers a boolean flag; the variable takes what strconv.ParseBool accepts.
func (s *Set) Bool(p *bool, name, env string, def bool, text string) {
	if v := s.getenv(env); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: expected true or false", env, v))
		} else {
			def = b
		}
	}
	s.fs.BoolVar(p, name, def, usage(env, text))
}

// Int registers an integer flag.
func (s *Set) Int(p *int, name, env string, def int, text string) {
	if v := s.getenv(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: expected a whole number", env, v))
		} else {
			def = n
		}
	}
	s.fs.IntVar(p, name, def, usage(env, text))
}

// Duration registers a duration flag ("30s", "24h").
func (s *Set) Duration(p *time.Duration, name, env string, def time.Duration, text string) {
	if v := s.getenv(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: expected a duration such as 30s or 24h", env, v))
		} else {
			def = d
		}
	}
	s.fs.DurationVar(p, name, def, usage(env, text))
}

// TextValue is a type that parses and prints itself (slog.Level, netip.Prefix).
type TextValue interface {
	encoding.TextMarshaler
	encoding.TextUnmarshaler
}

// Text registers a flag of a type that parses itself: p holds the default on entry.
// expect says what a valid value looks like, for the error.
func (s *Set) Text(p TextValue, name, env, expect, text string) {
	if v := s.getenv(env); v != "" {
		if err := p.UnmarshalText([]byte(v)); err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: expected %s", env, v, expect))
		}
	}
	s.fs.TextVar(p, name, p, usage(env, text))
}
