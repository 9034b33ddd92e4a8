// Command mogate is the reverse-OTP gateway. Subcommands: serve, sms
// simulate, numbers list/sync, conformance, bench, version. main only hands
// the arguments to run.
package main

import "os"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
