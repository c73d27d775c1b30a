package link

// OnStored makes l call f after each copy JetStream stored, with how many its Link has
// stored so far: a test cancels a Link midway with it.
func OnStored(l *Linker, f func(n int64)) { l.onStored = f }
