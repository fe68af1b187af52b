// The report a starting process sends back over its CLOEXEC error pipe, shared by the addon's spawn child
// and the init's enter preamble (which takes the pipe over once the spawn child has executed it). EOF on
// the pipe means every process that held it executed something or finished entering. A record with
// err == 0 and pid > 0 names the process forked into the container's pid namespace.
#pragma once

struct ChildError {
  int err;
  int pid;
  char step[56];
};
