import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { printSchemaFile } from '../api/print-schema';

/** npm run schema:print — writes the served schema to schema/schema.graphql. */
const path = join(__dirname, '..', '..', 'schema', 'schema.graphql');
writeFileSync(path, printSchemaFile());
console.log(`wrote ${path}`);
