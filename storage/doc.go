// Package storage turns a model's storage URI (a local path, file://, or
// hf://ORG/REPO[@REVISION]) into a local model folder, downloading from the
// Hugging Face Hub into the cache layout huggingface_hub uses, so that a
// user's existing cache is reused and ours is reusable by Python. It imports
// nothing of Chorus.
package storage
