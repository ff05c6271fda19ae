/** The osvb command line: a thin shell over @osv-build/engine. */
import { readFileSync } from 'node:fs';
import { build, expandGeneratedManifest, jsonReporter, OsvbError, progressMode, textReporter, type Reporter } from '@osv-build/engine';
import { engineOptions, parseBuildArgs, type ParsedBuildArgs } from './args.js';
import { runCache, runExplain } from './commands.js';
import { runImageCommand } from './imagecmds.js';
import { runRofs } from './rofs.js';
import { runRun } from './run.js';
import { runWatch } from './watchcmd.js';
import { BUILD_HELP, MAIN_HELP } from './help.js';
import { reportingErrors } from './reporting.js';


function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function reporterFor(args: ParsedBuildArgs): Reporter {
  return args.json ? jsonReporter() : textReporter({ verbose: args.verbose, ...progressMode(args.progress) });
}

async function runBuild(argv: string[], printManifest: boolean): Promise<number> {
  const command = printManifest ? undefined : { argv, cwd: process.cwd() };
  const args = parseBuildArgs(argv);
  if (args.help) {
    process.stdout.write(BUILD_HELP);
    return 0;
  }
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const reporter = reporterFor(args);
    const result = await build({
      ...engineOptions(args),
      ...(command ? { command } : {}),
      reporter,
      signal: controller.signal,
      streamMakeOutput: args.verbose,
    });
    if (printManifest) {
      const name = args.bootfs ? 'bootfs.manifest' : 'usr.manifest';
      const entries = expandGeneratedManifest(
        result.outputs.files.get(name) ?? '',
        `${result.resolved.buildPath}/${name}`,
        result.resolved.buildPath,
        result.resolved.libgccSDir,
        args.compat === 'osv' ? 'os' : 'sorted',
      );
      if (args.json) {
        process.stdout.write(JSON.stringify({ type: 'manifest', manifest: name, entries: entries.map(({ line: _l, ...e }) => e) }) + '\n');
      } else {
        process.stdout.write(entries.map((e) => `${e.guest}: ${e.host}\n`).join(''));
      }
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export async function main(argv: string[]): Promise<number> {
  return reportingErrors(argv, async () => {
    const [cmd, ...rest] = argv;
    switch (cmd) {
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(MAIN_HELP);
        return cmd === undefined ? 2 : 0;
      case '--version':
      case '-V':
        process.stdout.write(`osvb ${version()}\n`);
        return 0;
      case 'build':
        return await runBuild(rest, false);
      case 'manifest':
        return await runBuild(rest, true);
      case 'watch':
        return await runWatch(rest);
      case 'explain':
        return await runExplain(rest);
      case 'cache':
        return await runCache(rest);
      case 'bootfs':
      case 'export':
        return await runImageCommand(cmd, rest);
      case 'rofs':
        return await runRofs(rest);
      case 'run':
        return await runRun(rest);
      default:
        throw new OsvbError('OSVB_USAGE', `unknown command "${cmd}"`, { hint: 'commands: build, watch, manifest, explain, cache, rofs, bootfs, export; see osvb --help' });
    }
  });
}
