// Linked with one layer's objects and the layers below it (CMakeLists.txt): a call from a layer
// into one above it leaves an undefined symbol here and fails the build.
int main() { return 0; }
