// Lint for the bugs we are likeliest to write: floating promises in MQTT handlers, non-exhaustive
// switches over states, circular imports, and imports across domain boundaries.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

// The import picture: protocol → runtime, firmware → agent ∥ coordinator → simulator → cli. Each
// package's package.json lists the packages it may import and its exports map what they may reach;
// this rule names the arrows that must never exist, with the reason.
const boundary = (folder, forbidden) => ({
  files: [`${folder}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: forbidden.map((f) => ({
          group: [`@fleet/${f}`, `@fleet/${f}/*`],
          message: `${folder}/ must not depend on ${f}/ (see the layout in README.md).`,
        })),
      },
    ],
  },
});

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      'import-x/no-cycle': 'error',
    },
  },
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked },
  // A package reaches another through its name and exports map, never a relative path into its folder.
  { files: ['{protocol,runtime,firmware,agent,coordinator,simulator,cli}/**/*.ts'], rules: { 'import-x/no-relative-packages': 'error' } },
  boundary('protocol', ['runtime', 'firmware', 'agent', 'coordinator', 'simulator', 'cli']),
  boundary('runtime', ['firmware', 'agent', 'coordinator', 'simulator', 'cli']),
  boundary('firmware', ['runtime', 'agent', 'coordinator', 'simulator', 'cli']),
  boundary('agent', ['coordinator', 'simulator', 'cli']),
  boundary('coordinator', ['agent', 'simulator', 'cli']),
  boundary('simulator', ['cli']),
  {
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
