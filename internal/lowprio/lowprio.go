// Package lowprio runs background work (a broadcast's fan-out) on OS threads that the
// kernel schedules after the server's other threads. Go has no goroutine priorities: on
// a machine whose cores are all busy, a trigger's goroutines wait for the kernel's time
// slices behind the fan-out's, whatever Go's scheduler does. A thread with a higher nice
// value gets a much smaller share of a busy core, and no less of an idle one, so
// background work still uses every spare cycle.
package lowprio

// Nice is how much a background thread's nice value is raised above the process's. At
// 10 the kernel weighs it about a tenth of a normal thread.
const Nice = 10

// Pin locks the calling goroutine to its OS thread and lowers that thread's priority
// (on Linux; elsewhere it does nothing). The goroutine must not unlock the thread: when
// it returns, its thread exits with it instead of going back to Go's pool with the
// lower priority. An error says the priority could not be lowered; the goroutine stays
// locked and runs at normal priority.
func Pin() error { return pin() }
