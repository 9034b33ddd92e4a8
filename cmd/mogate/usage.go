package main

import (
	"errors"
	"flag"
	"fmt"
)

// usageErr returns a usageError (exit 2: the command line cannot run, an
// unknown flag or subcommand, a missing or conflicting flag) with the
// formatted message.
func usageErr(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// parseFlags parses args into fs, which prints its usage to its output on
// a bad flag; a bad flag or a positional argument is a usageError, --help
// stays flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	return nil
}
