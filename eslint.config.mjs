// ESLint (flat config): the recommended JavaScript and typescript-eslint rules plus the project's own conventions.
// Layout (quotes, semicolons, line width) is Prettier's job (.prettierrc.json); no rule here overlaps with it.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'build-*/', 'node_modules/', 'examples/', 'prebuilds/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // A disable comment that suppresses nothing is an error: each one must name a live finding.
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    languageOptions: { globals: { ...globals.node } },
    rules: {
      // Lazy `require('./x') as typeof import('./x')` is how the CLI keeps start-up small (only the modules a
      // command needs are loaded) while keeping the types; a static import would load everything at start.
      '@typescript-eslint/no-require-imports': 'off',
      // `_name` marks a parameter or binding kept for its position (callbacks, destructuring).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
      // Types are imported as types (`import type`, or `type X` inside the braces): the imports left are the ones
      // that load a module at run time, which is what start-up cost and the layering are about. `typeof import()`
      // stays allowed: it types the lazy requires.
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false },
      ],
      // `catch {}` marks a best-effort step whose failure changes nothing (a cache, an optional file).
      'no-empty': ['error', { allowEmptyCatch: true }],
      eqeqeq: ['error', 'smart'],
      'no-var': 'error',
      'prefer-const': 'error',
    },
  },
  {
    // The runtime itself is also checked with type information, for promises nobody waits for: an unhandled
    // rejection in a resident process (the policy server, a pool) ends it. Tests and scripts are left out: node:test's
    // test() returns a promise the runner owns, and typed linting of everything costs every `npm test` more time.
    files: ['lib/**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: path.dirname(fileURLToPath(import.meta.url)) },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
  {
    // Plain CommonJS scripts (bin/hako, install.js, scripts/*.js, src-native/libc-flags.js).
    files: ['**/*.js', 'bin/hako'],
    languageOptions: { sourceType: 'commonjs' },
    // `const crypto = require('crypto')` names the module as Node's global does; the binding is module-local.
    rules: { 'no-redeclare': ['error', { builtinGlobals: false }] },
  },
);
