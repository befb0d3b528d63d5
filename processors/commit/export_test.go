package commit

// ZombieAfterCompaction is the zombie scenario of the commit stage's tests, for other backends' tests.
var ZombieAfterCompaction = zombieAfterCompaction
