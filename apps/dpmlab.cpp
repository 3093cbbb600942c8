#include <cstdio>
int main() { std::puts("dpmlab"); return 0; }
