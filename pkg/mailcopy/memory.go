package mailcopy

// The memory budget of a copy (see "Memory" in the package documentation). A
// process that runs copies sets its Go memory limit from it (imapcopy-copier's
// --memory-limit, IMAPCOPY_COPIER_MEMORY_LIMIT): the garbage collector then keeps
// the heap under the budget instead of letting it grow to twice the live data.
const (
	// ConnectionMemory is the budget of one connection per account (a worker's
	// source and destination connections): their buffers (TLS records, go-imap's
	// reader, the appender's 64 KiB write buffer and 32 KiB copy buffer, about
	// 300 KiB in all), whatever the message sizes and the batch limits, plus the
	// metadata of the folder being compared, about 250 bytes a message for both
	// sides (measured: 104 bytes a message a side, plus the destination's identity
	// counts): 8 MiB covers a folder of some 30,000 messages. A bigger folder needs
	// its metadata live while it is compared; the GC then works harder, the copy
	// goes on.
	ConnectionMemory = 8 << 20
	// ProcessMemory is the budget of a process apart from its copies: the Go
	// runtime, the clients of a worker (NATS, Redis), the plan of each copy.
	ProcessMemory = 16 << 20
)

// MemoryBudget is the memory budget of a process that runs tasks copies at once,
// each with connections connections per account (Config.Connections, 0: the
// default): ProcessMemory + tasks × connections × ConnectionMemory.
func MemoryBudget(tasks, connections int) int64 {
	if connections <= 0 {
		connections = defaultConnections
	}
	return ProcessMemory + int64(max(tasks, 1))*int64(connections)*ConnectionMemory
}
