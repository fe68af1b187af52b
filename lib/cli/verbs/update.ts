// `update`: change a running container's resources, from --resources JSON and/or runc's individual flags.
import { HakoError } from '../../errors';
import type { LinuxResources } from '../../oci/types';
import { parseVerb, readJsonArg, requireId } from '../args';
import type { CliContext } from '../context';

function sizeArg(v: string, flag: string): number {
  const m = /^(-?\d+)([kmgt]?)b?$/i.exec(v.trim());
  if (!m) throw new HakoError(`${flag}: invalid size "${v}"`, { field: flag });
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[
    m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'
  ];
  return Number(m[1]) * mult;
}

/** `update`: --resources FILE|- (LinuxResources JSON) and/or runc's individual flags. */
export async function update(cli: CliContext, argv: string[]): Promise<number> {
  const rt = cli.runtime();
  const p = parseVerb('update', argv);
  const id = requireId(p, 'update');
  const r: LinuxResources = p.flags.resources
    ? (readJsonArg(p.flags.resources as string, '--resources') as LinuxResources)
    : {};
  const f = (n: string) => p.flags[n] as string | undefined;
  const int = (n: string) => {
    const v = f(n)!;
    if (!/^-?\d+$/.test(v)) throw new HakoError(`--${n}: invalid number "${v}"`, { field: `--${n}` });
    return Number(v);
  };
  if (f('memory')) (r.memory ??= {}).limit = sizeArg(f('memory')!, '--memory');
  if (f('memory-swap')) (r.memory ??= {}).swap = sizeArg(f('memory-swap')!, '--memory-swap');
  if (f('memory-reservation'))
    (r.memory ??= {}).reservation = sizeArg(f('memory-reservation')!, '--memory-reservation');
  if (f('kernel-memory')) (r.memory ??= {}).kernel = sizeArg(f('kernel-memory')!, '--kernel-memory');
  if (f('kernel-memory-tcp')) (r.memory ??= {}).kernelTCP = sizeArg(f('kernel-memory-tcp')!, '--kernel-memory-tcp');
  // runc spells it --cpu-share; --cpu-shares (docker's spelling) is accepted too.
  if (f('cpu-share')) (r.cpu ??= {}).shares = int('cpu-share');
  if (f('cpu-shares')) (r.cpu ??= {}).shares = int('cpu-shares');
  if (f('cpu-idle')) (r.cpu ??= {}).idle = int('cpu-idle');
  if (f('cpu-quota')) (r.cpu ??= {}).quota = int('cpu-quota');
  if (f('cpu-period')) (r.cpu ??= {}).period = int('cpu-period');
  if (f('cpu-burst')) (r.cpu ??= {}).burst = int('cpu-burst');
  if (f('cpu-rt-period')) (r.cpu ??= {}).realtimePeriod = int('cpu-rt-period');
  if (f('cpu-rt-runtime')) (r.cpu ??= {}).realtimeRuntime = int('cpu-rt-runtime');
  if (f('cpuset-cpus')) (r.cpu ??= {}).cpus = f('cpuset-cpus');
  if (f('cpuset-mems')) (r.cpu ??= {}).mems = f('cpuset-mems');
  if (f('pids-limit')) r.pids = { limit: int('pids-limit') };
  if (f('blkio-weight')) r.blockIO = { weight: int('blkio-weight') };
  if (f('l3-cache-schema') || f('mem-bw-schema'))
    throw new HakoError('update: Intel RDT is not supported by hako', { field: '--l3-cache-schema' });
  await rt.update(id, r);
  return 0;
}
