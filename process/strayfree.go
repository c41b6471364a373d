package process

// A stray (see strays) comes from a start that an agent did not finish:
// the agent was killed between the fork and the pidfile's write, or the
// release's app left children behind when it died on its own. Looking for
// one reads /proc/<pid>/cwd of every process on the host, which during a
// change of 1,000 services (3,000 processes) made each Start slow while it
// held a parallel slot (issue 11). So the runtime remembers which
// releases cannot have one: those this Runtime created (a new directory,
// no process has it as its working directory), and those it found none
// of since it last started them (Stop looks after the process is gone).
// A Start it makes forgets it: the app may leave children when it dies.
// A new Runtime (an agent restart) knows none and looks again.

// scanStrays is strays; tests wrap it to count the scans.
var scanStrays = strays

// strayFree reports whether name can have no stray.
func (p *Runtime) strayFree(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.noStrays[name]
}

// setStrayFree records whether name can have no stray.
func (p *Runtime) setStrayFree(name string, free bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !free {
		delete(p.noStrays, name)
		return
	}
	if p.noStrays == nil {
		p.noStrays = map[string]bool{}
	}
	p.noStrays[name] = true
}
